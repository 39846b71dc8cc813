"""The package's layers import one way only: every import of every module,
those inside functions included, read with ``ast``, goes to the module's own
layer or one below, and no module imports another in a circle.

Layers, bottom up (docs/architecture.rst draws them):
core < stages, bitstream < backends < codec < training < the package's
``__init__`` < tools. ``stages`` and ``bitstream`` stand side by side and do
not import each other.
"""
import ast
from pathlib import Path

import diffjpeg

PACKAGE = Path(diffjpeg.__file__).parent
RANK = {"core": 0, "stages": 1, "bitstream": 1, "backends": 2, "codec": 3, "training": 4, "": 5, "tools": 6, "__main__": 7}


def module_name(path: Path) -> str:
    parts = ["diffjpeg", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    """``diffjpeg.stages.dct`` -> ``stages``; the package's ``__init__`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(path: Path) -> list[tuple[str, int]]:
    """Every diffjpeg module ``path`` imports, with the line."""
    name = module_name(path)
    return imports_of(path.read_text(), name, name if path.name == "__init__.py" else name.rsplit(".", 1)[0])


def imports_of(source: str, module: str, package: str) -> list[tuple[str, int]]:
    """The diffjpeg modules ``source`` (of ``module`` in ``package``) imports,
    wherever the import stands: ``from . import x`` counts as importing ``x``
    where ``x`` is a module or a compiled extension."""
    found = []
    for node in ast.walk(ast.parse(source, module)):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "diffjpeg"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "diffjpeg":
                continue
            for a in node.names:
                sub = PACKAGE.parent / f"{target}.{a.name}".replace(".", "/")
                is_module = sub.with_suffix(".py").exists() or sub.is_dir() or sub.with_suffix(".c").exists()
                found.append((f"{target}.{a.name}" if is_module else target, node.lineno))
    return found


def upward(module: str, target: str) -> bool:
    """Whether ``module`` importing ``target`` goes to a layer above it or beside it."""
    low, high = layer(target), layer(module)
    return target != "diffjpeg" and low != high and RANK[low] >= RANK[high]


def graph() -> dict[str, list[tuple[str, int, Path]]]:
    return {module_name(p): [(t, line, p) for t, line in imports(p)] for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_sits_in_a_known_layer():
    unknown = sorted({layer(m) for m in graph()} - set(RANK))
    assert unknown == [], f"modules outside the layers {sorted(RANK)}: {unknown}; add the layer to RANK and to docs/architecture.rst"


def test_no_import_goes_up_or_sideways():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {module} ({layer(module)}) imports {target} ({layer(target)})"
        for module, targets in graph().items()
        for target, line, path in targets
        if upward(module, target)
    ]
    assert offenders == [], "imports from a lower layer up to a higher one (move the code down, or the import up):\n" + "\n".join(offenders)


def test_no_module_imports_the_package_itself_from_below():
    """``from diffjpeg import x`` inside the library would run the public API's
    imports from a layer below it: only the tools may."""
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
        for module, targets in graph().items()
        for target, line, path in targets
        if target == "diffjpeg" and RANK[layer(module)] < RANK["tools"]
    ]
    assert offenders == []


def test_no_circle():
    g = graph()
    edges = {m: sorted({t for t, _, _ in targets if t in g and t != m}) for m, targets in g.items()}
    state, path, circles = {}, [], []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for t in edges[m]:
            if state.get(t) == "open":
                circles.append(" -> ".join(path[path.index(t):] + [t]))
            elif t not in state:
                visit(t)
        path.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert circles == [], "import circles:\n" + "\n".join(circles)


def test_the_reader_sees_what_the_rule_forbids():
    """An import inside a function is read, resolved and judged: a stage that
    reached up into a backend (as dct.py once did, lazily) fails the rule;
    its import of the core passes."""
    source = "from ..core import check\n\n\ndef f():\n    from ..backends import cpu\n    from .. import jpeg\n"
    found = imports_of(source, "diffjpeg.stages.dct", "diffjpeg.stages")
    assert found == [("diffjpeg.core.check", 1), ("diffjpeg.backends.cpu", 5), ("diffjpeg", 6)]
    assert [upward("diffjpeg.stages.dct", t) for t, _ in found] == [False, True, False]
    assert upward("diffjpeg.stages.dct", "diffjpeg.bitstream.huffman")  # side by side: not allowed either
    assert not upward("diffjpeg.codec.pipeline", "diffjpeg.backends.exact")
