"""The dependency rule of docs/architecture.md, checked on every module's imports (at any depth
in the module, so a lazy import inside a function counts too):

    market  <-  tradingview  <-  storage  <-  sync / quality  <-  defs, streamer  <-  CLI

Dagster is imported only under ``pocketquant_pipelines/defs`` and by ``definitions.py``; the
market core imports nothing of the product but errors (no I/O, no settings)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pocketquant_pipelines"

# layer of each part; a module may import its own layer and those below
LAYERS = {
    "errors": 0, "market": 1, "logging": 1, "settings": 1,
    "tradingview": 2, "storage": 3, "charts": 3,
    "sync": 4, "quality": 4, "datasets": 4, "api": 4,
    "defs": 5, "definitions": 5, "streamer": 5,
    "commands": 6, "cli": 6, "__main__": 6, "demo": 6, "topology": 6,
}


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def part_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "streamer":
        return "streamer"
    if parts[0] == "pocketquant_pipelines" and len(parts) > 1:
        return parts[1]
    return None


def product_modules():
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "streamer").rglob("*.py")]):
        rel = path.relative_to(ROOT)
        own = "streamer" if rel.parts[0] == "streamer" else (
            rel.parts[1].removesuffix(".py") if len(rel.parts) > 1 else None)
        if own and own != "__init__":
            yield path, own


MODULES = list(product_modules())


def test_every_part_has_a_layer():
    assert {own for _, own in MODULES} <= set(LAYERS), {own for _, own in MODULES} - set(LAYERS)


@pytest.mark.parametrize("path, own", MODULES, ids=[str(p.relative_to(ROOT)) for p, _ in MODULES])
def test_imports_point_down(path, own):
    upward = sorted(name for name in imports(path)
                    if (part := part_of(name)) in LAYERS and LAYERS[part] > LAYERS[own]
                    and part != own)
    assert not upward, f"{path.relative_to(ROOT)} ({own}) imports from above: {upward}"


def test_dagster_lives_under_defs():
    allowed = {PACKAGE / "definitions.py"}
    bad = [str(path.relative_to(ROOT)) for path, own in MODULES
           if own != "defs" and path not in allowed
           and any(n == "dagster" or n.startswith(("dagster.", "dagster_")) for n in imports(path))]
    assert not bad, bad


def test_the_market_core_imports_only_errors():
    bad = {(str(path.relative_to(ROOT)), name) for path, own in MODULES if own == "market"
           for name in imports(path)
           if name.startswith("pocketquant_pipelines.") and part_of(name) not in ("market", "errors")}
    assert not bad, bad
