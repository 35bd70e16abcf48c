"""The docs site (`make docs`): the README, every notebook executed and an API reference, built with warnings as errors.

The site is built once per run from the notebooks that tests/test_literate.py::test_notebook_runs executed (the
`docs_site` fixture in conftest.py): no notebook runs twice.
"""
from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import BIN, DOCS, NOTEBOOKS_GROUP, REPO, docs_tools

pytestmark = NOTEBOOKS_GROUP
LIB = REPO / "mlops_wb"
VIEW = "application/vnd.mlops-wb.view+json"  # a workbench widget's output: the parts of its last state


# ---------------------------------------------------------------------------------------------------------------
# the package's public names, found here on their own (not with the docs build's code, so this can catch it out)
# ---------------------------------------------------------------------------------------------------------------

def _families() -> list[str]:
    subpackages = [p.name for p in LIB.iterdir() if (p / "__init__.py").exists() and not p.name.startswith("_")]
    return sorted(subpackages + [p.stem for p in LIB.glob("*.py") if not p.stem.startswith("_")])


def _modules(family: str) -> list[str]:
    folder = LIB / family
    mods = [f"mlops_wb.{family}"]
    if folder.is_dir():
        mods += [f"mlops_wb.{family}.{p.stem}" for p in folder.glob("*.py") if not p.stem.startswith("_")]
    return mods


def _face_exports(face: str) -> dict[str, str]:
    "name -> the module whose __all__ holds it, for every name a face exports (own, star-imported, lazy)."
    mod = importlib.import_module(face)
    out = {n: face for n in getattr(mod, "__all__", [])}
    tree = ast.parse(Path(mod.__file__).read_text())
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and [a.name for a in node.names] == ["*"]:
            sub = f"{face}.{node.module}"
            for n, home in _face_exports(sub).items():
                out.setdefault(n, home)
    if "__dir__" in vars(mod):  # lazy: the name's object knows its module
        for n in mod.__dir__():
            if not n.startswith("_") and n not in vars(mod) and n not in out:
                out[n] = getattr(mod, n).__module__
    return out


def _inventory(html: Path) -> dict[str, str]:
    "The Python objects of the built site's objects.inv: full name -> page and anchor."
    from sphinx.util.inventory import InventoryFile

    with open(html / "objects.inv", "rb") as f:
        inv = InventoryFile.load(f, "", lambda base, uri: uri)
    data = getattr(inv, "data", inv)  # Sphinx 8.2's _Inventory, or the dict of Sphinx 9 and older
    return {name: getattr(item, "uri", None) or item[2]
            for kind, items in data.items() if kind.startswith("py:") for name, item in items.items()}


class _Page(HTMLParser):
    "The ids, links, script sources and element classes of one HTML page."

    def __init__(self, path: Path):
        super().__init__()
        self.ids, self.hrefs, self.scripts, self.classes, self.text = set(), [], [], [], []
        self._in_pre = 0
        self.pre: list[str] = []
        self.feed(path.read_text())

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        if tag in ("link", "img", "iframe") and (a.get("href") or a.get("src")):
            self.scripts.append(a.get("href") or a.get("src"))
        self.classes.append((tag, a.get("class") or ""))
        if tag == "pre":
            self._in_pre += 1
            self.pre.append("")

    def handle_endtag(self, tag):
        if tag == "pre":
            self._in_pre -= 1

    def handle_data(self, data):
        self.text.append(data)
        if self._in_pre:
            self.pre[-1] += data


def _page(site, name: str) -> _Page:
    path = site.html / name
    assert path.exists(), f"the site has no page {name}"
    return _Page(path)


# ---------------------------------------------------------------------------------------------------------------
# the build
# ---------------------------------------------------------------------------------------------------------------

def test_docs_build_has_no_warning(docs_site):
    "CI builds the site with warnings as errors; each warning names the notebook and cell (or docstring) to fix."
    assert docs_site.code == 0 and not docs_site.warnings, (
        f"the docs build failed (Sphinx exit {docs_site.code}), warnings are errors:\n" + "\n".join(docs_site.warnings))


def test_every_public_name_has_an_entry_in_the_reference(docs_site):
    "Each family face's exports and each module's __all__ are in the reference (objects.inv, with their anchor)."
    inventory = _inventory(docs_site.html)
    missing, wrong_page = [], []
    families = _families()
    for required in ("core", "data", "drift", "tracking", "training", "gates", "registry", "server", "pipelines",
                     "plots", "widgets", "cli"):
        assert required in families
    for family in families:
        entries = {f"mlops_wb.{family}.{n}" if home == f"mlops_wb.{family}" else f"{home}.{n}"
                   for n, home in _face_exports(f"mlops_wb.{family}").items()}
        for module in _modules(family):
            entries |= {f"{module}.{n}" for n in getattr(importlib.import_module(module), "__all__", [])}
            entries.add(module)
        for full in sorted(entries):
            uri = inventory.get(full)
            if uri is None:
                missing.append(full)
            elif not uri.startswith(f"api/{family}.html#"):
                wrong_page.append(f"{full} -> {uri}")
    assert not missing, f"{len(missing)} public names have no entry in the API reference: {missing}"
    assert not wrong_page, f"entries outside their family's reference page: {wrong_page}"
    # the anchors are on the pages, and each face's page links every name it exports to its entry
    for family in families:
        page = _page(docs_site, f"api/{family}.html")
        for n, home in _face_exports(f"mlops_wb.{family}").items():
            assert f"{home}.{n}" in page.ids, f"api/{family}.html has no anchor {home}.{n}"
            assert any(h.endswith(f"#{home}.{n}") for h in page.hrefs), f"api/{family}.html does not link {n}"


def test_landing_page_is_the_readme_with_its_guides(docs_site):
    readme = (REPO / "README.md").read_text()
    guides = re.findall(r"^## (.+)$", readme, flags=re.M)
    page = _page(docs_site, "index.html")
    text = " ".join(page.text)
    for guide in guides:
        assert guide.replace("`", "") in text, f"the landing page lacks the README's guide {guide!r}"
    for topic in ("demo", "Command line", "workbench", "approval", "Pipelines", "Data", "team", "tracking URI",
                  "settings.ini"):
        assert any(topic.lower() in g.lower() for g in guides), topic
    images = [src for src in page.scripts if src.endswith(".png")]
    assert len(images) == readme.count("](docs/screenshots/"), images  # the README's screenshots
    assert all((docs_site.html / src).exists() for src in images), images


def test_every_notebook_has_a_page_in_order_grouped_by_family(docs_site):
    rn, md = docs_tools()
    page = _page(docs_site, "index.html")
    nav = [h.split("#")[0] for h in page.hrefs if h.startswith("nbs/")]
    notebooks = rn.all_notebooks()
    for nb in notebooks:
        rel = "nbs/" + nb.relative_to(REPO / "nbs").as_posix().replace(".ipynb", ".html")
        assert (docs_site.html / rel).exists(), f"no page for {nb.name}"
        assert rel in nav, f"{rel} is not in the site's navigation"
    # grouped by family, numbered order within a family; captions are the family names
    src = (md.SRC / "index.md").read_text()
    groups = re.findall(r":caption: (.+)\n\n((?:nbs/.+\n)+)", src)
    captions = [c for c, _ in groups]
    assert captions[0] == "overview" and captions[-1] == "pipeline notebooks"
    for family in ("core", "data", "drift", "gates", "registry", "pipelines", "cli", "plots", "widgets"):
        assert family in captions, captions
    for caption, docs in groups:
        docs = docs.split()
        assert docs == sorted(docs), f"{caption}: {docs} not in numbered order"
    drift = dict(groups)["drift"].split()
    assert "nbs/02k_distributed" in drift and all(d.startswith("nbs/02") for d in drift)


def test_examples_show_their_outputs(docs_site):
    "Every figure, table and printed line of the executed notebooks is on the page; directives and tests are not lost."
    rn, _ = docs_tools()
    for nb in rn.notebooks_to_execute():
        executed = json.loads(rn.cached_path(nb).read_text())
        outputs = [o for c in executed["cells"] for o in c.get("outputs", [])]
        figures = sum("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs)
        figures += sum("application/vnd.plotly.v1+json" in part for o in outputs  # a workbench widget's charts
                       for part in o.get("data", {}).get(VIEW, {}).get("snapshot", {}).get("parts", []))
        tables = sum(o.get("data", {}).get("text/html", "").count("<table") for o in outputs
                     if "application/vnd.plotly.v1+json" not in o.get("data", {}))
        html = (docs_site.html / "nbs" / nb.name.replace(".ipynb", ".html")).read_text()
        assert html.count('class="mlops-wb-plotly"') == figures, nb.name
        assert html.count("<table") >= tables, f"{nb.name}: {tables} tables in the outputs, fewer on the page"
        if figures:
            assert "_static/plotly.min.js" in html and "_static/plotly-figures.js" in html, nb.name
        else:
            assert "_static/plotly.min.js" not in html, f"{nb.name} loads plotly.js without a figure"
    # spot checks: a figure, a widget's static view
    assert "mlops-wb-plotly" in (docs_site.html / "nbs/10_plots_drift.html").read_text()
    assert "columns drifted" in (docs_site.html / "nbs/21_drift_widget.html").read_text()


def test_nbdev_directives_are_hidden_and_export_cells_folded(docs_site):
    for page in sorted((docs_site.html / "nbs").rglob("*.html")):
        p = _Page(page)
        leaked = [b for b in p.pre if re.search(r"^\s*#\s*\|", b, flags=re.M)]
        assert not leaked, f"{page.name} shows nbdev directives: {leaked[0][:200]}"
        assert not any("default_exp" in b for b in p.pre), page.name
    schema = (docs_site.html / "nbs/01b_schema.html").read_text()
    assert "tag_hide-input" in schema and "<details" in schema  # the export cells' source, folded
    assert 'id="mlops_wb.data.schema.infer_schema"' not in schema  # show_doc links to the reference's entry
    assert 'href="../api/data.html#mlops_wb.data.schema.infer_schema"' in schema
    assert 'class="mlops-wb-showdoc' in schema


def test_plotly_js_is_served_by_the_site_and_nothing_from_elsewhere(docs_site):
    from plotly.offline import get_plotlyjs

    assert (docs_site.html / "_static" / "plotly.min.js").read_text() == get_plotlyjs()
    for page in sorted(docs_site.html.rglob("*.html")):
        external = [s for s in _Page(page).scripts if re.match(r"^(https?:)?//", s)]
        assert not external, f"{page.relative_to(docs_site.html)} loads {external}: the site must work offline"


def test_unexecuted_notebooks_say_why(docs_site):
    workbench = "".join(_page(docs_site, "nbs/workbench.html").text)  # the words, not the markup around `make demo`
    assert "shown as written" in workbench and "make demo" in workbench
    images = [src for src in _page(docs_site, "nbs/workbench.html").scripts if src.endswith(".png")]
    assert len(images) == 3 and all((docs_site.html / "nbs" / src).resolve().exists() for src in images), images
    train = (docs_site.html / "nbs/pipelines/train.html").read_text()
    assert "A pipeline notebook, shown as written" in train


# ---------------------------------------------------------------------------------------------------------------
# the parts, on small inputs
# ---------------------------------------------------------------------------------------------------------------

def _notebook(path: Path, cells: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = {"cells": [{"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": src,
                     **({"outputs": [], "execution_count": None} if kind == "code" else {})}
                    for i, (kind, src) in enumerate(cells)],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb, indent=1) + "\n")
    return path


def _tiny_project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "tiny"\n\n[tool.nbdev]\nlib_path = "tiny"\n'
                                             'nbs_path = "nbs"\ntst_flags = "notest"\n')
    (tmp_path / "tiny").mkdir()
    return tmp_path / "nbs"


def test_a_notebook_runs_the_cells_nbdev_test_runs(tmp_path):
    "Executing for the docs skips what nbdev-test skips (`#| eval: false`, the notest flag) and nothing else."
    nbs = _tiny_project(tmp_path)
    nb = _notebook(nbs / "a.ipynb", [
        ("markdown", "# A\n> a notebook"),
        ("code", "import os\nprint('ran in', os.path.basename(os.getcwd()))"),
        ("code", "#| eval: false\nraise RuntimeError('never evaluated')"),
        ("code", "#| notest\nraise RuntimeError('slow, not in tests')"),
        ("code", "{'a': 1}"),
    ])
    out = tmp_path / "a.out.ipynb"
    r = subprocess.run([sys.executable, str(DOCS / "run_notebooks.py"), "--execute-one", str(nb), str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    cells = json.loads(out.read_text())["cells"]
    assert "".join(cells[1]["outputs"][0]["text"]) == "ran in nbs\n"
    assert cells[2]["outputs"] == [] and cells[3]["outputs"] == []
    assert "".join(cells[4]["outputs"][0]["data"]["text/plain"]) == "{'a': 1}"
    assert "#| eval: false" in "".join(cells[2]["source"])  # directives kept: the docs build reads them
    t = subprocess.run([str(BIN / "nbdev-test"), str(nb)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert t.returncode == 0, t.stderr  # nbdev-test agrees


def test_a_failing_notebook_names_its_cell_and_error(tmp_path):
    nbs = _tiny_project(tmp_path)
    nb = _notebook(nbs / "bad.ipynb", [("markdown", "# Bad"), ("code", "x = 1"),
                                       ("code", "raise ValueError(f'boom {x}')")])
    r = subprocess.run([sys.executable, str(DOCS / "run_notebooks.py"), "--execute-one", str(nb),
                        str(tmp_path / "out.ipynb")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "ValueError" in r.stderr and "boom 1" in r.stderr
    assert not (tmp_path / "out.ipynb").exists()


def test_the_cache_is_keyed_by_content(tmp_path, monkeypatch):
    rn, _ = docs_tools()
    monkeypatch.setattr(rn, "NBS", tmp_path / "nbs")
    monkeypatch.setattr(rn, "CACHE", tmp_path / "cache")
    nb = _notebook(tmp_path / "nbs" / "n.ipynb", [("code", "1 + 1")])
    env = rn.environment_key()
    assert env == rn.environment_key()
    key = rn.notebook_key(nb, env)
    assert rn.cached_result(nb, key) is None  # missing
    res = rn.execute_one(nb, key)
    assert res.ok, res.error
    assert rn.cached_result(nb, key).cached
    assert rn.cached_result(nb, rn.notebook_key(nb, "another environment")) is None  # stale: the package changed
    _notebook(nb, [("code", "1 + 2")])
    assert rn.cached_result(nb, rn.notebook_key(nb, env)) is None  # stale: the notebook changed
    (tmp_path / "cache" / "n.json").write_text("{not json")
    assert rn.cached_result(nb, key) is None  # a broken record is a miss, not a crash


REPORT = """import json, os, sys
import plotly.io as pio
seen = {"cwd": os.getcwd(), "path": sys.path, "argv": sys.argv[1:], "pid": os.getpid(), "ppid": os.getppid(),
        "renderer": pio.renderers.default, "telemetry": os.environ.get("MLFLOW_DISABLE_TELEMETRY"),
        "preloaded": "mlflow" in sys.modules, "leaks": [hasattr(sys.modules.get("pandas"), "_leak"),
        hasattr(sys.modules.get("mlops_wb.core"), "_leak"), "MLOPS_WB_LEAK" in os.environ, "leak" in globals()]}
open(os.path.join(os.environ["MLOPS_WB_POOL_TEST"], NAME + ".json"), "w").write(json.dumps(seen))"""


def test_notebooks_forked_from_the_warm_process_run_as_in_a_fresh_one(tmp_path, monkeypatch):
    "Each notebook gets its own fork of one warm process: what one changes the next does not see, as in fresh ones."
    rn, _ = docs_tools()
    if not rn.FORK:
        pytest.skip("no fork here: every notebook starts a fresh interpreter")
    nbs = _tiny_project(tmp_path)
    monkeypatch.setattr(rn, "NBS", nbs)
    monkeypatch.setattr(rn, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(rn, "TIMEOUT", 20.0)
    seen = tmp_path / "seen"
    seen.mkdir()
    monkeypatch.setenv("MLOPS_WB_POOL_TEST", str(seen))  # the caller's environment at the time, as a notebook's
    leak = ("import os, sys, pandas, mlops_wb.core\npandas._leak = mlops_wb.core._leak = leak = 1\n"
            "os.environ['MLOPS_WB_LEAK'] = '1'\nsys.path.insert(0, 'leaked')\nos.chdir('/')")
    a = _notebook(nbs / "a.ipynb", [("code", "NAME = 'a'\n" + REPORT), ("code", leak)])
    b = _notebook(nbs / "sub" / "b.ipynb", [("code", "NAME = 'b'\n" + REPORT)])
    bad = _notebook(nbs / "bad.ipynb", [("code", "x = 1"), ("code", "raise ValueError(f'boom {x}')")])
    stuck = _notebook(nbs / "stuck.ipynb", [("code", "import os, time\nopen(os.environ['MLOPS_WB_POOL_TEST'] + "
                                                     "'/stuck.pid', 'w').write(str(os.getpid()))\ntime.sleep(600)")])
    results = rn.execute([a, b, bad, stuck], jobs=1, force=True, progress=False)
    assert [r.ok for r in results] == [True, True, False, False], [r.error for r in results]
    assert "ValueError" in results[2].error and "boom 1" in results[2].error  # the failing cell's traceback
    assert results[3].error.startswith("stuck.ipynb did not finish in 20 s (MLOPS_WB_NOTEBOOK_TIMEOUT).")
    ra, rb = (json.loads((seen / f"{n}.json").read_text()) for n in "ab")
    assert ra["preloaded"] and rb["preloaded"] and ra["ppid"] == rb["ppid"] != os.getpid()  # forks of one process
    assert ra["pid"] != rb["pid"]
    assert rb["leaks"] == [False, False, False, False]  # nothing a changed: modules, environment, namespace
    assert (ra["cwd"], rb["cwd"]) == (str(nbs), str(nbs / "sub"))
    assert rb["renderer"] == "plotly_mimetype" and rb["telemetry"] == "true"
    assert rb["argv"] == ["--execute-one", str(b), str(rn.cached_path(b)) + ".part"]
    for pid in (rb["ppid"], int((seen / "stuck.pid").read_text())):  # the warm process and the stuck notebook ended
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # the same notebook in a fresh interpreter, as before the warm process: the same sys.path and folder
    r = subprocess.run([sys.executable, str(DOCS / "run_notebooks.py"), "--execute-one", str(b), str(tmp_path / "b")],
                       cwd=b.parent, env=rn.notebook_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    fresh = json.loads((seen / "b.json").read_text())
    assert not fresh["preloaded"] and (fresh["path"], fresh["cwd"]) == (rb["path"], rb["cwd"])


def test_a_warning_names_the_notebook_and_cell(tmp_path):
    "Warnings are errors, told in the notebook's terms: its path, the cell's index and id, the line."
    _, md = docs_tools()
    src = tmp_path / "src"
    nb = _notebook(tmp_path / "nbs" / "broken.ipynb", [
        ("code", "#| default_exp core.errors"),
        ("markdown", "# Broken\n> a notebook with a bad link"),
        ("code", "#| export\nfrom mlops_wb.core.errors import NotFoundError"),
        ("markdown", "Some prose.\n\nSee [the other notebook](nowhere.ipynb)."),
    ])
    (src / "nbs").mkdir(parents=True)
    (src / "nbs" / "broken.ipynb").write_text(json.dumps(md.convert_notebook(nb, None)))
    (src / "index.md").write_text("# Tiny\n\n```{toctree}\nnbs/broken\n```\n")
    code, warnings = md.sphinx(1, src=src, out=tmp_path / "html", work=tmp_path / "work")
    assert code != 0
    assert any(w.startswith("nbs/broken.ipynb, cell index 3 (id c3), line ") and "nowhere.ipynb" in w
               for w in warnings), warnings


@pytest.mark.parametrize("directive, tags", [
    ("#| export", ["hide-input"]), ("#| hide", ["remove-cell"]), ("#| default_exp x", ["remove-cell"]),
    ("#| echo: false", ["remove-input"]), ("#| output: false", ["remove-output"]), ("#| eval: false", []),
    ("#| notest", []), ("#|exporti", ["remove-cell"]),
])
def test_directives_become_cell_tags(tmp_path, directive, tags):
    _, md = docs_tools()
    nb = _notebook(tmp_path / "n.ipynb", [("code", f"{directive}\ny = 2")])
    cell = md.convert_notebook(nb, None)["cells"][0]
    assert cell["metadata"]["tags"] == tags and cell["source"] == "y = 2"


def test_outputs_become_static_html(tmp_path):
    "A plotly figure becomes a div drawn by the site's plotly.js; a widget keeps its static view, not its model."
    _, md = docs_tools()
    fig = {"data": [{"type": "bar", "x": ["a</script>"], "y": [1]}], "layout": {}}
    plot = md.render_output({"output_type": "display_data", "metadata": {},
                             "data": {"application/vnd.plotly.v1+json": fig, "text/html": "<div>plotly loader</div>"}})
    assert "plotly loader" not in plot["data"]["text/html"]
    payload = re.search(r'<script type="application/json">(.*)</script>', plot["data"]["text/html"]).group(1)
    assert json.loads(payload.replace("<\\/", "</")) == fig and "</script>" not in payload
    widget = md.render_output({"output_type": "execute_result", "metadata": {}, "execution_count": 1, "data": {
        "application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/html": "<table><tr><td>1</td></tr></table>",
        "application/vnd.plotly.v1+json": fig, "text/plain": "Dash()"}})
    assert set(widget["data"]) == {"text/html", "text/plain"}
    view = widget["data"]["text/html"]
    assert view.startswith('<div class="mlops-wb-widget"><table>') and view.count('class="mlops-wb-plotly"') == 1
    assert md.render_output({"output_type": "execute_result", "metadata": {}, "data": {}, "execution_count": 2}) is None
