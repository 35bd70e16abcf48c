"""The package's shape, checked: one subpackage per family, imports that only go down, no import circles, no
private names crossing modules, and no private internals of other projects outside `mlops_wb.core.compat`.

The graph is read from the source with `ast` (every import, including those inside functions, and the module names
that `importlib` is given as strings), so a lazy import counts like any other.
"""
from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from conftest import REPO

PKG = REPO / "mlops_wb"
# The floors, from the bottom up. A module may import its own family and anything on a lower floor, never higher.
LAYERS: tuple[str, ...] = ("core", "alerts", "data", "drift", "tracking", "training", "gates", "registry", "server",
                           "pipelines", "monitor", "plots", "widgets", "cli")
COMPAT = "mlops_wb.core.compat"  # the one place allowed to touch other projects' private names
MAX_LINES = 400
IPYTHON_PROTOCOL = re.compile(r"^_(repr_\w+|ipython_\w+|repr_mimebundle)_$")


def modules() -> dict[str, Path]:
    "Every module of the package by dotted name (a package by its own name)."
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        if p.name == "_modidx.py":
            continue
        parts = p.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


MODULES = modules()


def family(name: str) -> str:
    "The family of a module: the first component under mlops_wb ('' for the package itself)."
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def floor(name: str) -> int:
    fam = family(name)
    assert fam == "" or fam in LAYERS, f"{name}: the family '{fam}' has no floor; add it to LAYERS in {__file__}"
    return -1 if fam == "" else LAYERS.index(fam)


def imported(name: str, path: Path) -> Iterator[tuple[str, int, list[str]]]:
    "(module imported, line, names imported from it) for every import of mlops_wb in `path`, lazy ones included."
    tree = ast.parse(path.read_text())
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("mlops_wb"):
                continue
            names = [a.name for a in node.names]
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            yield target, node.lineno, names
            for s in subs:
                yield s, node.lineno, []
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("mlops_wb"):
                    yield a.name, node.lineno, []
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in MODULES \
                and node.value != name:
            yield node.value, node.lineno, []  # importlib.import_module("mlops_wb....")


def graph() -> dict[str, set[str]]:
    return {n: {t for t, _, _ in imported(n, p) if t in MODULES and t != n} for n, p in MODULES.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    "Strongly connected components with more than one module (Tarjan)."
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    found = cycles(graph())
    assert not found, f"import circles: {found}. A family's face (__init__) may import its modules, never the reverse."


def test_imports_only_go_down():
    up = [f"{a} -> {b}" for a, targets in graph().items() for b in targets
          if family(a) != family(b) and floor(b) > floor(a)]
    assert not up, f"upward imports (floors, bottom up: {', '.join(LAYERS)}): {up}"


def test_modules_inside_a_family_never_import_its_face():
    bad = [f"{a} -> {b}" for a, targets in graph().items() for b in targets
           if b == f"mlops_wb.{family(a)}" and a != b and family(a) and "." in a[len("mlops_wb."):]]
    assert not bad, f"a module imports its own family's face (import the sibling module instead): {bad}"


def test_no_private_names_cross_modules():
    bad = [f"{MODULES[n].relative_to(REPO)}:{line} imports {x} from {t}" for n, p in MODULES.items()
           for t, line, names in imported(n, p) for x in names if x.startswith("_") and x != "__version__"]
    assert not bad, "private names imported across modules (make them public within the family): " + "; ".join(bad)


def own_private_names() -> set[str]:
    "Underscored names this package defines itself: functions, classes, attributes, fields."
    out: set[str] = set()
    for p in MODULES.values():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                out.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                out.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                out.add(node.target.id)
    return {n for n in out if n.startswith("_")}


def test_no_private_internals_of_other_projects():
    ours = own_private_names()
    bad = []
    for name, p in MODULES.items():
        if name == COMPAT:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            where = f"{p.relative_to(REPO)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and not node.module.startswith("mlops_wb") and node.module != "__future__":
                if any(part.startswith("_") for part in node.module.split(".")):
                    bad.append(f"{where}: from {node.module} import ...")
                bad += [f"{where}: {a.name} from {node.module}" for a in node.names if a.name.startswith("_")]
            elif isinstance(node, ast.Attribute):
                attr = node.attr
                private = attr.startswith("_") and not attr.startswith("__") and not IPYTHON_PROTOCOL.match(attr)
                if private and attr not in ours:
                    bad.append(f"{where}: .{attr}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr") \
                    and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                    and str(node.args[1].value).startswith("_") and not str(node.args[1].value).startswith("__") \
                    and node.args[1].value not in ours:
                bad.append(f"{where}: {node.func.id}(..., {node.args[1].value!r})")
    assert not bad, (f"private internals of other projects (move the workaround into {COMPAT}, with a test pinned "
                     "to the behaviour it relies on): " + "; ".join(bad))


def test_modules_stay_readable():
    big = {str(p.relative_to(REPO)): n for p in MODULES.values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them by concept): {big}"


def test_graph_is_drawn_from_real_imports():
    "The checker itself: it sees a lazy import inside a function, and a module named as a string."
    edges = graph()
    assert "mlops_wb.core" in edges and "mlops_wb.core.errors" in edges["mlops_wb.core.settings"]
    assert {"mlops_wb.cli.data", "mlops_wb.cli.registry"} <= edges["mlops_wb.cli"]
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


# The README's picture of the house, generated from the same graph: `python tests/test_architecture.py` rewrites it.
START, END = "<!-- families:start -->", "<!-- families:end -->"


def notebooks_by_module() -> dict[str, list[str]]:
    "Module name -> the notebooks that export into it (from their `#| default_exp`)."
    out: dict[str, list[str]] = {}
    for nb in sorted((REPO / "nbs").glob("*.ipynb")):
        m = re.search(r'#\| default_exp ([\w.]+)', nb.read_text())
        if m:
            out.setdefault(f"mlops_wb.{m.group(1).removesuffix('.__init__')}", []).append(nb.stem)
    return out


def summary(path: Path) -> str:
    "A module's one-line docstring."
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return " ".join(doc.split())


def family_edges() -> dict[str, set[str]]:
    "Family -> the lower families it imports."
    out: dict[str, set[str]] = {f: set() for f in LAYERS}
    for a, targets in graph().items():
        for b in targets:
            if family(a) and family(b) and family(a) != family(b):
                out[family(a)].add(family(b))
    return out


def reduced(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    "The edges that no longer path implies (a transitive reduction: the graph is acyclic)."
    def reach(a: str, seen: set[str]) -> set[str]:
        for b in edges[a] - seen:
            seen.add(b)
            reach(b, seen)
        return seen

    return {a: {b for b in bs if not any(b in reach(c, set()) for c in bs - {b})} for a, bs in edges.items()}


def families_block() -> str:
    "The README block: the families, bottom up, as a table, and their imports as a Mermaid graph."
    nbs = notebooks_by_module()
    edges = family_edges()
    rows = ["| floor | family | notebooks | modules | imports | what |", "|---|---|---|---|---|---|"]
    for i, fam in enumerate(LAYERS):
        face = f"mlops_wb.{fam}"
        members = sorted(m for m in MODULES if m == face or m.startswith(face + "."))
        books = sorted(b for m in members for b in nbs.get(m, []))
        mods = ", ".join(f"`{m[len('mlops_wb.'):]}`" for m in members)
        uses = ", ".join(sorted(edges[fam], key=LAYERS.index))
        rows.append(f"| {i} | `{fam}` | {', '.join(f'`{b}`' for b in books)} | {mods} | {uses} | "
                    f"{summary(MODULES[face])} |")
    lines = ["```mermaid", "flowchart BT"]
    lines += [f"    {a} --> {b}" for a, bs in reduced(edges).items() for b in sorted(bs, key=LAYERS.index)]
    lines.append("```")
    n_edges = sum(len(v) for v in graph().values())
    head = (f"{len(LAYERS)} families, {len(MODULES)} modules, {n_edges} imports between modules; no circles, none "
            "upward (checked by `tests/test_architecture.py`, which also writes this block). In the drawing an arrow "
            "reads \"imports\", and an import implied by a longer path is left out; the table lists them all.")
    return "\n".join([START, head, "", *rows, "", *lines, END])


def test_readme_draws_the_house_as_it_is():
    text = (REPO / "README.md").read_text()
    assert START in text and END in text, f"README.md lacks the {START} ... {END} block"
    drawn = text[text.index(START): text.index(END) + len(END)]
    assert drawn == families_block(), "README.md's families block is out of date: run python tests/test_architecture.py"


if __name__ == "__main__":
    readme = REPO / "README.md"
    text = readme.read_text()
    if START in text:
        text = text[: text.index(START)] + families_block() + text[text.index(END) + len(END):]
    readme.write_text(text)
    print(families_block())
