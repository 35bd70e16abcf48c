"""Build the docs site from the notebooks: `make docs`, or `python docs/make_docs.py [--jobs N] [--force]`.

1. execute the module notebooks, or take their fresh executed copies from the cache (run_notebooks.py);
2. write a Sphinx source tree in docs/_build/src: the README as the landing page, every notebook with nbdev's
   directives turned into MyST-NB's cell tags, and an API reference page per family of the package;
3. run Sphinx (MyST-NB, autodoc, the Furo theme) with warnings as errors, into docs/_build/html.

Nothing here executes a notebook a second time: Sphinx renders the executed copies as they are.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_notebooks as rn  # noqa: E402

REPO, NBS = rn.REPO, rn.NBS
DOCS = REPO / "docs"
BUILD = DOCS / "_build"
SRC, HTML = BUILD / "src", BUILD / "html"
LIB = REPO / "mlops_wb"
PACKAGE = "mlops_wb"

# nbdev directives: which hide the whole cell, which only its source, which only its output
REMOVE_CELL = {"default_exp", "hide", "exporti", "include: false"}
HIDE_SOURCE = {"export", "exports", "code-fold: true", "code-fold: show"}
REMOVE_SOURCE = {"echo: false"}
REMOVE_OUTPUT = {"output: false"}
_DIRECTIVE = re.compile(r"^\s*#\s*\|\s*(.*?)\s*$")
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"
VIEW_MIME = "application/vnd.mlops-wb.view+json"  # a workbench widget's output: its snapshot's parts (HTML, figures)
LIB_MIME = "application/vnd.mlops-wb.lib+json"  # plotly.js for static HTML exports: the site has its own

UNEXECUTED_NOTES = {
    "workbench.ipynb": (
        "This notebook is shown as written, without outputs: it opens the project's MLflow store, which the docs "
        "build does not have. Run `make demo` (or `mlops-wb demo`), then `jupyter lab nbs/workbench.ipynb` and "
        "Run All. This is what it shows, from the browser tests:\n\n"
        "![ExperimentComparison](../docs/screenshots/compare.png)\n\n"
        "![DriftDashboard](../docs/screenshots/drift.png)\n\n"
        "![DeploymentApproval](../docs/screenshots/approval.png)"),
    "pipelines/": (
        "A pipeline notebook, shown as written: papermill runs it as a tracked MLflow run, with the parameters "
        "of its `parameters` cell overridden by `mlops-wb run NAME -p key value` or by a pipeline spec "
        "(see the README's pipelines guide). Its outputs are kept with the run, as an artifact."),
}


# ---------------------------------------------------------------------------------------------------------------
# the package: families, their faces and public names
# ---------------------------------------------------------------------------------------------------------------

def families() -> list[str]:
    "The families of the package, from its folder: each subpackage and each top-level module (not private)."
    out = [p.name for p in LIB.iterdir() if p.is_dir() and (p / "__init__.py").exists() and not p.name.startswith("_")]
    out += [p.stem for p in LIB.glob("*.py") if not p.stem.startswith("_")]
    return sorted(out)


def family_modules(family: str) -> list[str]:
    "The dotted names of a family's modules: its face first, then its modules by name."
    face = f"{PACKAGE}.{family}"
    folder = LIB / family
    if not folder.is_dir():
        return [face]
    return [face] + [f"{face}.{p.stem}" for p in sorted(folder.glob("*.py")) if not p.stem.startswith("_")]


def star_imports(module: str) -> list[str]:
    "The modules that `module` star-imports (a face re-exports its modules' `__all__` this way)."
    mod = importlib.import_module(module)
    tree = ast.parse(Path(mod.__file__).read_text())
    pkg = module if Path(mod.__file__).name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            base = pkg
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            out.append(f"{base}.{node.module}" if node.level else node.module)
    return out


def public_names(module: str) -> list[str]:
    "A module's `__all__`, its star-imported modules' `__all__`, and the names its lazy `__dir__` adds."
    mod = importlib.import_module(module)
    names = list(getattr(mod, "__all__", []))
    for m in star_imports(module):
        names += [n for n in getattr(importlib.import_module(m), "__all__", []) if n not in names]
    if "__dir__" in vars(mod):  # a lazy face: names imported on first use
        names += [n for n in mod.__dir__() if not n.startswith("_") and n not in vars(mod) and n not in names]
    return names


def home_module(module: str, name: str) -> str:
    "The module whose `__all__` defines `name` as seen from `module` (the face's star import or lazy source)."
    mod = importlib.import_module(module)
    if name in getattr(mod, "__all__", []):
        return module
    for m in star_imports(module):
        if name in getattr(importlib.import_module(m), "__all__", []):
            return home_module(m, name)
    obj = getattr(mod, name)
    return getattr(obj, "__module__", module)


# ---------------------------------------------------------------------------------------------------------------
# the API reference
# ---------------------------------------------------------------------------------------------------------------

def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n")[0]


def _directive(module: str, name: str) -> str:
    "The autodoc directive for one public name of `module` (a name re-exported from another module points home)."
    import inspect

    obj = getattr(importlib.import_module(module), name)
    defined_in = getattr(obj, "__module__", None) if (inspect.isclass(obj) or inspect.isfunction(obj)) else None
    if defined_in and defined_in != module and defined_in.startswith(PACKAGE):
        return (f".. py:data:: {name}\n   :module: {module}\n\n"
                f"   Re-exported from :py:obj:`{defined_in}.{name}`.\n")
    full = f"{module}::{name}"
    if inspect.isclass(obj):
        return f".. autoclass:: {full}\n   :show-inheritance:\n   :members:\n"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return f".. autofunction:: {full}\n"
    value = repr(obj)
    return f".. autodata:: {full}\n" + ("   :no-value:\n" if len(value) > 120 or "\n" in value else "")


def api_page(family: str) -> str:
    "The reference page of one family, in MyST markdown with reStructuredText blocks for autodoc."
    face = f"{PACKAGE}.{family}"
    mod = importlib.import_module(face)
    out = [f"# `{face}`\n", f"{_first_line(mod.__doc__)}\n"]
    exported = public_names(face)
    if exported:
        out.append(f"Import these from `{face}`:\n")
        out.append("| name | defined in | what |\n|---|---|---|")
        for name in exported:
            home = home_module(face, name)
            obj = getattr(importlib.import_module(home), name)
            what = _first_line(getattr(obj, "__doc__", "")) if callable(obj) else ""
            out.append(f"| {{py:obj}}`{name} <{home}.{name}>` | `{home}` | {what.replace('|', '&#124;')} |")
        out.append("")
    for module in family_modules(family):
        m = importlib.import_module(module)
        if module != face:
            out.append(f"## `{module}`\n\n{_first_line(m.__doc__)}\n")
        body = [f".. py:module:: {module}\n"] + [_directive(module, n) for n in getattr(m, "__all__", [])]
        out.append("```{eval-rst}\n" + "\n".join(body) + "```\n")
    return "\n".join(out)


def api_index(fams: list[str]) -> str:
    rows = [f"| [`{PACKAGE}.{f}`]({f}.md) | {_first_line(importlib.import_module(f'{PACKAGE}.{f}').__doc__)} |"
            for f in fams]
    return ("# API reference\n\nEvery public name of every family, from the docstrings of the generated package. "
            "Each family's face (its `__init__`) re-exports its modules' names: import from the face.\n\n"
            "| family | what |\n|---|---|\n" + "\n".join(rows) + "\n\n```{toctree}\n:hidden:\n\n"
            + "\n".join(fams) + "\n```\n")


# ---------------------------------------------------------------------------------------------------------------
# notebooks -> MyST-NB notebooks
# ---------------------------------------------------------------------------------------------------------------

def split_directives(source: str) -> tuple[list[str], str]:
    "nbdev's leading `#|` lines of a code cell, and the code without them."
    lines = source.splitlines(keepends=True)
    dirs = []
    while lines and (m := _DIRECTIVE.match(lines[0])):
        dirs.append(m.group(1))
        lines.pop(0)
    return dirs, "".join(lines).lstrip("\n")


def _matches(directives: list[str], keys: set[str]) -> bool:
    return any(d in keys or d.split()[0] in keys for d in directives if d)


def default_exp(nb: dict) -> str | None:
    "The module a notebook exports to (`#| default_exp NAME`), as a dotted name, or None."
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            for d in split_directives("".join(cell["source"]))[0]:
                if d.startswith("default_exp"):
                    name = d.split(None, 1)[1].strip()
                    return f"{PACKAGE}.{name.removesuffix('.__init__')}"
    return None


def exported_names(code: str, module: str | None) -> list[str]:
    "The public names of `module` that an export cell defines, in the order it defines them."
    if not module:
        return []
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    public = set(getattr(importlib.import_module(module), "__all__", []))
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
        else:
            names = []
        out += [n for n in names if n in public and n not in out]
    return out


def signature(obj: object) -> str:
    "A callable's signature as written in its source (annotations unquoted), or '' when it has none."
    import inspect

    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return ""
    params, star = [], False
    for p in sig.parameters.values():
        if p.kind is p.KEYWORD_ONLY and not star:
            params.append("*")
        star = star or p.kind in (p.KEYWORD_ONLY, p.VAR_POSITIONAL)
        text = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        if p.annotation is not p.empty:
            text += ": " + (p.annotation if isinstance(p.annotation, str) else inspect.formatannotation(p.annotation))
        if p.default is not p.empty:
            text += " = " + repr(p.default)
        params.append(text)
    out = f"({', '.join(params)})"
    if sig.return_annotation is not sig.empty:
        ret = sig.return_annotation
        out += " -> " + (ret if isinstance(ret, str) else inspect.formatannotation(ret))
    return out


def show_doc_cell(module: str, names: list[str], cell_id: str) -> dict:
    """A markdown cell with each exported name's signature and docstring, as nbdev's show_doc puts after an export
    cell; the name links to its entry in the API reference. (Markdown, as the docstrings are: nbdev's style.)"""
    import inspect

    mod = importlib.import_module(module)
    parts = []
    for n in names:
        obj = getattr(mod, n)
        kind = "class " if inspect.isclass(obj) else ""
        sig = signature(obj) if callable(obj) else ""
        sig = sig.removesuffix(" -> None") if kind else sig
        sig = f"`` {sig} ``" if "`" in sig else f"`{sig}`"
        doc = inspect.cleandoc(obj.__doc__ or "") if (inspect.isclass(obj) or inspect.isroutine(obj)) else ""
        head = f"{kind}{{py:obj}}`{n} <{module}.{n}>`" + (f" {sig}" if sig != "``" else "")
        parts.append(f":::{{container}} mlops-wb-showdoc\n{head}\n\n{doc}\n:::".replace("\n\n\n:::", "\n:::"))
    return {"cell_type": "markdown", "metadata": {}, "id": f"{cell_id}-doc", "source": "\n\n".join(parts)}


def _figure_html(fig: dict) -> str:
    "A plotly figure as a div the site's plotly-figures.js draws with the site's own plotly.js."
    data = json.dumps(fig, separators=(",", ":")).replace("</", "<\\/")
    return (f'<div class="mlops-wb-plotly"><script type="application/json">{data}</script></div>')


def render_output(output: dict) -> dict | None:
    """One output as the docs show it: a plotly figure drawn by the site's plotly.js, a widget as the static view
    its `_repr_mimebundle_` gives (its HTML and its figures; the live model needs a kernel), nothing when empty."""
    if output["output_type"] not in ("display_data", "execute_result"):
        return output
    data = {k: "".join(v) if isinstance(v, list) and k.startswith("text/") else v
            for k, v in output.get("data", {}).items()}  # nbformat may split text into lines
    if LIB_MIME in data:
        return None
    view = data.pop(VIEW_MIME, None)
    if view is not None:  # a workbench widget: its last state, tables as HTML and figures for the site's plotly.js
        parts = [p["text/html"] if "text/html" in p else _figure_html(p[PLOTLY])
                 for p in (view.get("snapshot") or {}).get("parts", []) if "text/html" in p or PLOTLY in p]
        return {**output, "metadata": {}, "data": {"text/html": '<div class="mlops-wb-widget">' + "\n".join(parts)
                                                   + "</div>", "text/plain": data.get("text/plain", "")}}
    widget = data.pop(WIDGET, None) is not None
    fig = data.pop(PLOTLY, None)
    if fig is not None:
        # beside plotly's json, plotly's own text/html is a loader for Jupyter; a widget's is its static view
        parts = ([data["text/html"]] if widget and "text/html" in data else []) + [_figure_html(fig)]
        data = {"text/html": "\n".join(parts), "text/plain": data.get("text/plain", "<Figure>")}
    if widget and "text/html" in data:
        data["text/html"] = f'<div class="mlops-wb-widget">{data["text/html"]}</div>'
    if not data:
        return None
    return {**output, "data": data, "metadata": {}}


def convert_notebook(src: Path, executed: Path | None, note: str | None = None) -> dict:
    "The notebook the docs render: nbdev directives as cell tags, export cells followed by their API entries."
    nb = json.loads((executed or src).read_text())
    module = default_exp(nb)
    title = _title_index(nb)
    cells, sources = [], []  # sources: each rendered cell's index in the source notebook (None: added here)

    def add(cell: dict, index: int | None) -> None:
        cells.append(cell)
        sources.append(index)

    for i, cell in enumerate(nb["cells"]):
        tags = list(cell.get("metadata", {}).get("tags", []))
        cell = {**cell, "metadata": {}}  # execnb's timings are not valid nbformat; the tags are all the docs need
        cell.setdefault("id", f"cell{i}")
        names = []
        if cell["cell_type"] == "code":
            directives, code = split_directives("".join(cell["source"]))
            cell["source"] = code.rstrip("\n")
            cell["outputs"] = [o for o in map(render_output, cell.get("outputs", [])) if o is not None]
            cell["execution_count"] = cell.get("execution_count")
            if _matches(directives, REMOVE_CELL) or not code.strip():
                tags.append("remove-cell")
            else:
                tags += [tag for keys, tag in ((HIDE_SOURCE, "hide-input"), (REMOVE_SOURCE, "remove-input"),
                                               (REMOVE_OUTPUT, "remove-output")) if _matches(directives, keys)]
            if "export" in directives or "exports" in directives:
                names = exported_names(code, module)
        cell["metadata"]["tags"] = tags
        add(cell, i)
        if names:
            add(show_doc_cell(module, names, cell["id"]), None)
        if note and i == title:
            add({"cell_type": "markdown", "metadata": {}, "id": "docs-note", "source": "```{note}\n" + note + "\n```"},
                None)
    kernelspec = nb.get("metadata", {}).get("kernelspec") or {"name": "python3", "display_name": "Python 3",
                                                               "language": "python"}
    meta = {"kernelspec": kernelspec, "language_info": {"name": "python", "pygments_lexer": "ipython3"},
            "mlops_wb_docs": {"source_cells": sources, "executed": executed is not None}}
    return {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}


def _title_index(nb: dict) -> int:
    "The index of the title cell (the first markdown cell starting with `# `), or -1."
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] == "markdown" and "".join(c["source"]).lstrip().startswith("# "):
            return i
    return -1


# ---------------------------------------------------------------------------------------------------------------
# the source tree
# ---------------------------------------------------------------------------------------------------------------

def notebook_families(notebooks: list[Path]) -> dict[Path, str]:
    """The family each notebook documents: its default_exp's, else that of the notebooks with its number
    (`02i_distributed` is a drift notebook), else "overview"; the pipeline notebooks are a group of their own."""
    exported: dict[Path, str] = {}
    for nb in notebooks:
        exp = default_exp(json.loads(nb.read_text()))
        if exp:
            exported[nb] = exp.split(".")[1]
    by_number = {}
    for nb, fam in exported.items():
        by_number.setdefault(re.match(r"\d*", nb.name).group(0), fam)
    out = {}
    for nb in notebooks:
        number = re.match(r"\d*", nb.name).group(0)
        if nb.relative_to(NBS).parts[0] == "pipelines":
            out[nb] = "pipeline notebooks"
        else:
            out[nb] = exported.get(nb) or (by_number.get(number) if number else None) or "overview"
    return out


def landing_page(groups: dict[str, list[str]], fams: list[str]) -> str:
    "The README as the landing page, with the site's navigation as hidden tables of contents."
    readme = (REPO / "README.md").read_text()
    # GitHub draws the README's Mermaid graph; the site, offline, shows its text (Pygments has no Mermaid lexer)
    readme = readme.replace("```mermaid\n", "```text\n")
    tocs = []
    for caption, docs in groups.items():
        tocs.append("```{toctree}\n:hidden:\n:caption: " + caption + "\n\n" + "\n".join(docs) + "\n```\n")
    tocs.append("```{toctree}\n:hidden:\n:caption: API reference\n\napi/index\n```\n")
    return readme.rstrip("\n") + "\n\n" + "\n".join(tocs)


def _write(path: Path, text: str, written: set[Path]) -> None:
    "Write `text` unless the file already holds it, so Sphinx re-reads only what changed."
    written.add(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def write_sources(results: dict[str, Path]) -> None:
    "Write the Sphinx source tree: landing page, notebooks (executed where they could be), API pages."
    written: set[Path] = set()
    for png in sorted((DOCS / "screenshots").glob("*.png")):
        dst = SRC / "docs" / "screenshots" / png.name
        written.add(dst)
        if not dst.exists() or dst.read_bytes() != png.read_bytes():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png, dst)
    fams = families()
    groups: dict[str, list[str]] = {"overview": []}
    notebooks = rn.all_notebooks()
    family_of = notebook_families(notebooks)
    for nb in notebooks:
        rel = nb.relative_to(NBS).as_posix()
        note = next((n for k, n in UNEXECUTED_NOTES.items() if rel == k or (k.endswith("/") and rel.startswith(k))),
                    None)
        converted = convert_notebook(nb, results.get(rel), note)
        _write(SRC / "nbs" / rel, json.dumps(converted, indent=1, ensure_ascii=False) + "\n", written)
        groups.setdefault(family_of[nb], []).append("nbs/" + rel.removesuffix(".ipynb"))
    # families in the order of their first notebook; the overview first and the pipeline notebooks last
    order = ["overview"] + [g for g in groups if g not in ("overview", "pipeline notebooks")] + ["pipeline notebooks"]
    groups = {g: groups[g] for g in order if groups.get(g)}
    for f in fams:
        _write(SRC / "api" / f"{f}.md", api_page(f), written)
    _write(SRC / "api" / "index.md", api_index(fams), written)
    _write(SRC / "index.md", landing_page(groups, fams), written)
    for stale in [p for p in SRC.rglob("*") if p.is_file() and p not in written]:
        stale.unlink()  # a notebook or family that is gone


# ---------------------------------------------------------------------------------------------------------------
# the build
# ---------------------------------------------------------------------------------------------------------------

_IN_NOTEBOOK = re.compile(r"^(?P<src>\S*?)nbs/(?P<nb>[^:]+\.ipynb):(?P<line>\d+):")
_IN_DOCSTRING = re.compile(r"^(?P<file>\S+\.py):docstring of (?P<obj>[\w.]+):(?P<line>\d+):")
_CELL_MARK = re.compile(r"^# %% (?P<nb>\S+\.ipynb)(?: #(?P<id>\S+))?")


def _notebook_cell(converted: Path, line: int) -> str:
    "MyST-NB numbers a notebook's lines as (cell index + 1) * 10000 + line: find the source notebook's cell."
    index, in_cell = line // 10000 - 1, line % 10000
    try:
        nb = json.loads(converted.read_text())
        source = nb["metadata"]["mlops_wb_docs"]["source_cells"][index]
        cell_id = nb["cells"][index].get("id", "?")
    except (OSError, ValueError, KeyError, IndexError):
        return f"cell index {index}, line {in_cell}"
    if source is None:
        return f"the API entries the docs add after cell index {index - 1}, line {in_cell}"
    return f"cell index {source} (id {cell_id}), line {in_cell}"


def _docstring_cell(pyfile: Path, obj: str) -> str | None:
    "Where a docstring comes from: the notebook and cell that nbdev's `# %%` marker names above its definition."
    try:
        lines = pyfile.read_text().splitlines()
    except OSError:
        return None
    name = obj.rsplit(".", 1)[-1]
    pattern = re.compile(rf"^\s*(?:async\s+def|def|class)\s+{re.escape(name)}\b|^\s*{re.escape(name)}\s*[:=]")
    at = next((i for i, ln in enumerate(lines) if pattern.match(ln)), None)
    if at is None:
        return None
    for ln in reversed(lines[:at]):
        if m := _CELL_MARK.match(ln):
            nb = (pyfile.parent / m.group("nb")).resolve()
            rel = nb.relative_to(REPO).as_posix() if nb.is_relative_to(REPO) else m.group("nb")
            return f"{rel}, cell id {m.group('id')}" if m.group("id") else rel
    return None


def locate(warning: str, src: Path | None = None) -> str:
    "A Sphinx warning told about its source: nbs/NAME.ipynb and the cell, the notebook of a docstring, or README.md."
    src = src or SRC
    text = warning.replace(str(src) + "/", "")
    if m := _IN_NOTEBOOK.match(text):
        where = _notebook_cell(src / "nbs" / m.group("nb"), int(m.group("line")))
        return f"nbs/{m.group('nb')}, {where}: " + text[m.end():].lstrip()
    if m := _IN_DOCSTRING.match(text):
        where = _docstring_cell(Path(m.group("file")), m.group("obj"))
        if where:
            return f"{where} (docstring of {m.group('obj')}, line {m.group('line')}): " + text[m.end():].lstrip()
    if text.startswith("index.md:"):
        return "README.md" + text[len("index.md"):] + " (the landing page is the README)"
    return text


@dataclass
class Site:
    "A built site: its folder, Sphinx's exit code, the warnings (located in the sources) and the seconds it took."
    html: Path
    code: int
    warnings: list[str]
    seconds: float


def sphinx(jobs: int | None = None, *, src: Path = SRC, out: Path = HTML, work: Path = BUILD) -> tuple[int, list[str]]:
    "Run Sphinx on `src` into `out` with warnings as errors; return its exit code and the warnings, located."
    work.mkdir(parents=True, exist_ok=True)
    log = work / "warnings.log"
    log.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(DOCS), "-W", "--keep-going", "-q",
           "-j", str(jobs or rn.default_jobs()), "-w", str(log), "-d", str(work / "doctrees"), str(src), str(out)]
    r = subprocess.run(cmd, cwd=REPO, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
                       capture_output=True, text=True)
    lines = log.read_text().splitlines() if log.exists() else []
    if r.returncode and not lines:  # Sphinx stopped before it could warn: its own message says why
        lines = (r.stderr or r.stdout).strip().splitlines()[-20:]
    return r.returncode, [locate(w, src) for w in lines if w.strip()]


def build(*, jobs: int | None = None, force: bool = False) -> int:
    "Execute what is stale, write the sources, run Sphinx; 0 when the site was built without a warning."
    start = time.time()
    results = rn.execute(jobs=jobs, force=force)
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"\n{r.notebook} failed:\n{r.error}", file=sys.stderr)
    if failed:
        print(f"docs: {len(failed)} notebook(s) failed to execute; fix them (nbdev-test nbs/NAME.ipynb shows the same).",
              file=sys.stderr)
        return 1
    executed = {r.notebook: rn.cached_path(NBS / r.notebook) for r in results}
    t_exec = time.time()
    write_sources(executed)
    code, warnings = sphinx(jobs)
    for w in warnings:
        print(w, file=sys.stderr)
    print(f"docs: executed/cached in {t_exec - start:.1f} s, rendered in {time.time() - t_exec:.1f} s -> "
          f"{HTML.relative_to(REPO)}/index.html" + (f" ({len(warnings)} warning(s): failed)" if code else ""))
    return code or (1 if warnings else 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", "-j", type=int, default=None, help="processes at a time (default: the CPU count)")
    p.add_argument("--force", action="store_true", help="execute every notebook, even when its copy is fresh")
    a = p.parse_args(argv)
    return build(jobs=a.jobs, force=a.force)


if __name__ == "__main__":
    sys.exit(main())
