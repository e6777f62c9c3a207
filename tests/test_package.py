"""The package's shape: every module reachable under its own name, and the layers import downwards only."""

import ast
import importlib
import pkgutil
from pathlib import Path

import infinityebsd

ROOT = Path(infinityebsd.__file__).resolve().parent
# io → crystal → grains → metrics → data → models/train → pipeline → evaluate → cli (README, architecture)
LAYERS = {"io": 0, "crystal": 1, "grains": 2, "metrics": 3, "data": 4, "models": 5, "train": 5, "pipeline": 6,
          "evaluate": 7, "cli": 8}


def test_no_module_is_shadowed_by_a_name_its_package_exports():
    """``import infinityebsd.a.b as m`` must give the module b. Python resolves it through the package's
    attribute ``b``, so a function of the same name re-exported by ``a/__init__.py`` would hide the
    module (``metrics.distributions`` and ``grains.reconstruct`` once did)."""
    shadowed = []
    for info in pkgutil.walk_packages(infinityebsd.__path__, "infinityebsd."):
        if info.name.endswith("__main__"):  # importing it runs the command line
            continue
        module = importlib.import_module(info.name)
        parent, _, name = info.name.rpartition(".")
        attr = getattr(importlib.import_module(parent), name)
        if attr is not module:
            shadowed.append(f"{info.name} (the package exports a {type(attr).__name__} of that name)")
    assert not shadowed, shadowed


def _imported_layers(path: Path):
    """(layer, line) of every infinityebsd layer a source file imports, at any depth of the file (imports
    inside functions count: they are how a lower layer would sneak an upper one in)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):  # import infinityebsd.pipeline.extend
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "infinityebsd" and len(parts) > 1:
                    yield parts[1], node.lineno
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 0:
            parts = (node.module or "").split(".")
            if parts[0] != "infinityebsd" or len(parts) < 2:
                continue
            yield parts[1], node.lineno
        elif node.level == 1:
            continue  # within its own subpackage
        elif node.module:
            yield node.module.split(".")[0], node.lineno
        else:  # from .. import pipeline
            for alias in node.names:
                yield alias.name, node.lineno


def test_each_layer_imports_only_the_layers_below_it():
    files = [p for p in ROOT.rglob("*.py") if p.relative_to(ROOT).parts[0] in LAYERS]
    assert len(files) > 30  # the walk found the package's modules
    upward = []
    for path in files:
        own = path.relative_to(ROOT).parts[0]
        for layer, line in _imported_layers(path):
            if layer in LAYERS and LAYERS[layer] > LAYERS[own]:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {layer}")
    assert not upward, upward


def test_the_layer_check_sees_an_upward_import(tmp_path):
    """The checker itself: a lower layer importing an upper one, at module level or inside a function,
    relatively, absolutely or as a plain ``import``, is found; a sibling or outside import is not."""
    src = tmp_path / "m.py"
    src.write_text("from ..metrics import grain_table\n"
                   "def f():\n    from infinityebsd.pipeline.extend import extend\n    from .. import cli\n"
                   "from .labels import x\nfrom ..io import read_map\nimport infinityebsd.evaluate.report\nimport numpy\n")
    found = sorted(_imported_layers(src))
    assert found == [("cli", 4), ("evaluate", 7), ("io", 6), ("metrics", 1), ("pipeline", 3)]
