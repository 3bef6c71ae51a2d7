"""The streamer's place in the one-way dependency rule: it imports market, tradingview and
storage, never sync or defs; nothing in the product package below the CLI imports it."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_streamer_imports_neither_sync_nor_defs():
    bad = {
        (str(path.relative_to(ROOT)), name)
        for path in (ROOT / "streamer").rglob("*.py")
        for name in _imports(path)
        if name.startswith(("pocketquant_pipelines.sync", "pocketquant_pipelines.defs", "pocketquant_pipelines.commands",
                            "pocketquant_pipelines.cli"))
    }
    assert not bad


def test_only_the_cli_imports_the_streamer():
    package = ROOT / "pocketquant_pipelines"
    bad = {
        (str(path.relative_to(ROOT)), name)
        for path in package.rglob("*.py")
        if path.parent.name != "commands"
        for name in _imports(path)
        if name == "streamer" or name.startswith("streamer.")
    }
    assert not bad
