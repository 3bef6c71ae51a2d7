"""The product never imports the simulator: only the two places that start it do (the
``simulate`` command and the demo). The simulator is a test double and demo server; a product
module that imported it would ship synthetic data paths into production."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIMULATOR = "tradingview_simulator"
ALLOWED = {
    ROOT / "pocketquant_pipelines" / "commands" / "simulate.py",
    ROOT / "pocketquant_pipelines" / "demo.py",
}


def _is_simulator(module: str | None) -> bool:
    return module is not None and (module == SIMULATOR or module.startswith(SIMULATOR + "."))


def simulator_imports(path: Path) -> list[str]:
    """``line: module`` of every import of the simulator in ``path``: import statements at any
    depth (function bodies included) and ``import_module("...")`` / ``__import__("...")``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: {a.name}" for a in node.names if _is_simulator(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_simulator(node.module):
            found.append(f"{node.lineno}: {node.module}")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name in ("import_module", "__import__") and _is_simulator(str(node.args[0].value)):
                found.append(f"{node.lineno}: {node.args[0].value}")
    return found


def product_modules() -> list[Path]:
    paths = [*sorted((ROOT / "pocketquant_pipelines").rglob("*.py")), *sorted((ROOT / "streamer").rglob("*.py"))]
    return [p for p in paths if p not in ALLOWED]


def test_no_product_module_imports_the_simulator():
    modules = product_modules()
    assert len(modules) > 50  # the walk saw the product, not an empty directory
    offenders = {str(p.relative_to(ROOT)): found for p in modules if (found := simulator_imports(p))}
    assert offenders == {}


def test_the_check_sees_the_import_of_the_simulate_command():
    # `pocketquant simulate` mounts the simulator's command (the demo starts it as a process)
    assert simulator_imports(ROOT / "pocketquant_pipelines" / "commands" / "simulate.py")


def test_the_check_sees_lazy_and_dynamic_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import importlib\n"
        "def f():\n"
        "    from tradingview_simulator.server import SimulatorServer\n"
        "    import tradingview_simulator as sim\n"
        "    return importlib.import_module('tradingview_simulator.market')\n"
        "import tradingview_simulatorx  # another package\n"
    )
    assert simulator_imports(sample) == ["3: tradingview_simulator.server", "4: tradingview_simulator",
                                         "5: tradingview_simulator.market"]
