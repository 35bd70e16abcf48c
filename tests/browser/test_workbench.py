"""The workbench as a user sees it: real JupyterLab and Notebook 7, headless Chromium, the demo's MLflow store.

Opens nbs/workbench.ipynb and runs it three times in one page: after each run, every chart of the three widgets
holds the traces and points the kernel drew (read from the plotly element's `_fullData`, against the figures the
saved notebook carries), never plotly's empty default axes. Then acts in each widget as a person would, saves,
reloads with the kernel alive (the live widgets come back) and after the kernel is gone (each output shows its last
state: tables and charts, no "model not found"). The same in Notebook 7. A papermill run of the notebook, exported
with nbconvert, shows the tables and charts in a browser that may not reach the network. Screenshots go to
tests/artifacts/ (`make screenshots` sends them to docs/screenshots/).
"""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time

import numpy as np
import pytest

from conftest import BIN, REPO, clean_env

pytestmark = pytest.mark.xdist_group("demo")  # shares the demo project with tests/test_demo.py

VIEW_MIME = "application/vnd.mlops-wb.view+json"
PLOTLY_MIME = "application/vnd.plotly.v1+json"

# Each workbench output (the extension's .mlwb-view) in notebook order: live or snapshot, its visible charts with
# their trace count and points per trace, its table rows, and whether it shows a widget error.
VIEWS_JS = """() => [...document.querySelectorAll('.jp-Notebook .mlwb-view')].map(v => {
  const vis = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  const len = a => (a && typeof a.length === 'number') ? a.length : 0;
  const count = t => t.dimensions ? len((t.dimensions[0] || {}).values) : (len(t.x) || len(t.y) || len(t.z) || len(t.values));
  const plots = [...v.querySelectorAll('.js-plotly-plot')].filter(vis).map(el => (el._fullData || []).map(count));
  const rows = [...v.querySelectorAll('tbody tr, .mlwb-grid-row[data-key]')].filter(vis).length;
  const text = v.innerText || '';
  return {state: v.dataset.mlwbState, plots, rows,
          error: text.includes('Error displaying widget') || text.includes('model not found')};
})"""

# The same read on a static HTML page (nbconvert's export).
HTML_JS = """() => {
  const len = a => (a && typeof a.length === 'number') ? a.length : 0;
  const count = t => t.dimensions ? len((t.dimensions[0] || {}).values) : (len(t.x) || len(t.y) || len(t.z) || len(t.values));
  return {plots: [...document.querySelectorAll('.mlwb-static .js-plotly-plot')].map(el => (el._fullData || []).map(count)),
          rows: document.querySelectorAll('.mlwb-static tbody tr').length,
          notes: [...document.querySelectorAll('.mlwb-static .mlwb-plot .mlwb-note')].length};
}"""


def _count(values) -> int:
    "How many values a trace attribute holds: a list, or plotly's base64 typed array {'dtype', 'bdata', 'shape'}."
    if isinstance(values, dict) and "bdata" in values:
        shape = values.get("shape")
        if shape:
            return int(str(shape).split(",")[0])
        return len(base64.b64decode(values["bdata"])) // np.dtype(values["dtype"]).itemsize
    return len(values) if isinstance(values, (list, tuple)) else 0


def _points(trace: dict) -> int:
    "A trace's points, counted as VIEWS_JS counts them."
    if trace.get("dimensions"):
        return _count((trace["dimensions"][0] or {}).get("values"))
    for key in ("x", "y", "z", "values"):
        n = _count(trace.get(key))
        if n:
            return n
    return 0


def expected_views(nb: dict) -> list[list[list[int]]]:
    "Per workbench output of a saved notebook, in order: its charts as points per trace (what the kernel drew)."
    views = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(VIEW_MIME)
            if view is not None:
                views.append([[_points(t) for t in p[PLOTLY_MIME].get("data", [])]
                              for p in view["snapshot"]["parts"] if PLOTLY_MIME in p])
    return views


def _drawn(charts: list[list[int]]) -> bool:
    "Every chart has traces and each trace has points (plotly's empty default axes have none)."
    return bool(charts) and all(c and all(n > 0 for n in c) for c in charts)


def wait_views(lab, want: list[list[list[int]]] | None, *, state: str | None, timeout: float = 120,
               problems: list[str] | None = None, where: str = "") -> list[dict]:
    """Poll until the page's views show the charts `want` (or, with None, any drawn charts) in `state`; fail with what
    they show. Table rows are waited for too; a view without rows is added to `problems` (checked at the test's end,
    so the rest of the flow is still verified)."""
    deadline, got = time.time() + timeout, []
    while time.time() < deadline:
        got = lab.page.evaluate(VIEWS_JS)
        ok = len(got) == (len(want) if want is not None else 3) and all(
            (state is None or v["state"] == state) and not v["error"]
            and (v["plots"] == w if w is not None else _drawn(v["plots"]))
            for v, w in zip(got, want or [None] * len(got), strict=False))
        if ok:
            break
        time.sleep(1)
    else:
        pytest.fail(f"{where}: the views never showed {want} ({state}); they show {got}")
    deadline = time.time() + 30
    while any(v["rows"] == 0 for v in got) and time.time() < deadline:
        time.sleep(1)
        got = lab.page.evaluate(VIEWS_JS)
    empty = [i for i, v in enumerate(got) if v["rows"] == 0]
    if empty:
        message = f"{where}: views {empty} show no table rows: {got}"
        if problems is None:
            pytest.fail(message)
        print(message)
        problems.append(message)
    return got


def widget_errors(lab, *, ignore: tuple[str, ...] = ()) -> list[str]:
    "Console errors, without failed resource loads (404s of optional files) and the `ignore` ones."
    return [e for e in lab.console_errors if "Failed to load resource" not in e and not any(i in e for i in ignore)]


def assert_no_widget_errors(lab, where: str, *, ignore: tuple[str, ...] = ()) -> None:
    "Fail, naming the step, when the console holds a widget error; the message shows the console lines before it."
    errors = widget_errors(lab, ignore=ignore)
    if not errors:
        return
    first = next((i for i, line in enumerate(lab.console_all) if line == f"error: {errors[0]}"), len(lab.console_all))
    context = "\n".join(lab.console_all[max(0, first - 12):first + 1])
    pytest.fail(f"{where}: {len(errors)} console error(s), first: {errors[0]}\nthe console up to it:\n{context}")


def _max_prompt(lab) -> int:
    "The highest execution count on the page."
    counts = [int(t.strip("[]: ")) for t in lab.page.locator(".jp-InputPrompt").all_inner_texts()
              if t.strip("[]: ").isdigit()]
    return max(counts, default=0)


@pytest.fixture
def project(demo_project, tmp_path):
    "A copy of the demo project (v1 champion, v2 pending) with the workbench notebook in it."
    root = tmp_path / "project"
    shutil.copytree(demo_project, root, ignore=shutil.ignore_patterns("*.log"))
    shutil.copy(REPO / "nbs" / "workbench.ipynb", root / "workbench.ipynb")
    return root


def _wait_text(locator, text: str, timeout: float = 60_000) -> None:
    "Wait until `text` shows inside `locator`; on timeout, fail with what it shows instead."
    try:
        locator.get_by_text(text).filter(visible=True).first.wait_for(timeout=timeout)  # not the hidden snapshot
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError
        pytest.fail(f"{text!r} never showed; the widget shows:\n{locator.inner_text()[-3000:]}")


def _views(lab):
    "The three workbench outputs, in notebook order: comparison, drift, approval."
    views = lab.page.locator(".jp-Notebook .mlwb-view")
    assert views.count() == 3, f"expected 3 workbench outputs, got {views.count()}"
    return views.nth(0), views.nth(1), views.nth(2)


def assert_grid_spans(view, where: str) -> None:
    "The runs grid spans the comparison's width, its columns side by side (never a sliver showing one column)."
    grid = view.locator(".mlwb-grid").first
    grid.wait_for(timeout=60_000)
    box, whole = grid.bounding_box(), view.bounding_box()
    assert box["width"] >= 0.9 * whole["width"], f"{where}: the grid is {box['width']:.0f} px of {whole['width']:.0f}"
    shown = grid.locator(".mlwb-grid-header .mlwb-grid-cell").evaluate_all(
        "(cells, right) => cells.filter(c => c.getBoundingClientRect().right <= right).map(c => c.textContent)",
        box["x"] + box["width"])
    assert len(shown) >= 4 and "status" in shown, f"{where}: the columns in view are {shown}"


def test_workbench_in_jupyterlab(lab_factory, project):
    lab = lab_factory(project, MLOPS_WB_USER="reviewer")
    page, path = lab.page, project / "workbench.ipynb"
    problems: list[str] = []
    lab.open("workbench.ipynb")

    # three consecutive runs in one page: every chart holds what the kernel drew, every time
    for run in range(3):
        before = _max_prompt(lab)
        lab.run_all()
        assert _max_prompt(lab) > before, f"run {run + 1}: Run All did not run the cells"
        assert lab.cell_errors() == [], lab.cell_errors()
        wait_views(lab, None, state="live", problems=problems, where=f"Lab run {run + 1}")
        want = expected_views(lab.save(path))
        assert len(want) == 3 and all(_drawn(v) for v in want), f"run {run + 1}: the kernel drew {want}"
        got = wait_views(lab, want, state="live", problems=problems, where=f"Lab run {run + 1}")
        print(f"run {run + 1}: charts (points per trace) {[v['plots'] for v in got]}")
    assert_no_widget_errors(lab, "Lab, three runs")  # no "[anywidget] Failed to initialize model." nor any other

    compare, drift, approval = _views(lab)
    assert_grid_spans(compare, "Lab")
    # 1. comparison: select two search trials; the diff shows only the params that differ
    rows = compare.locator(".mlwb-grid-row[data-key]:has-text('trial-00')")
    # on the run name, as a person clicks: a row is as wide as all its columns, its centre far off to the right
    rows.nth(0).click(position={"x": 40, "y": 12})
    _wait_text(compare, "1 selected")
    rows.nth(1).click(position={"x": 40, "y": 12})
    _wait_text(compare, "2 selected")
    diff = compare.locator(".widget-html:has-text('logisticregression__C')").first
    for _ in range(3):  # the kernel may still be switching tabs for the selection; click until the diff shows
        compare.get_by_role("tab", name="Params & metrics").click()
        try:
            diff.wait_for(timeout=15_000)
            break
        except Exception:  # noqa: BLE001 - Playwright's TimeoutError: click again
            continue
    diff.wait_for(timeout=30_000)
    assert "logisticregression__max_iter" not in diff.inner_text()  # the same in both runs, so not shown
    compare.get_by_role("tab", name="Histories").click()
    compare.locator(".mlwb-chart .js-plotly-plot").first.wait_for(timeout=60_000)
    lab.screenshot("compare", compare)
    assert_no_widget_errors(lab, "Lab, comparison")

    # 2. drift: click a column in the table; its reference/current overlay is drawn
    drift.locator("tr[data-key='mean radius']").first.click()  # the table's rows are keyed by column name
    drift.locator(".mlwb-status").filter(visible=True).get_by_text(re.compile(r"^mean radius (drifted|did not drift)\.")).wait_for(timeout=60_000)
    lab.screenshot("drift", drift)
    assert_no_widget_errors(lab, "Lab, drift")

    # 3. approval, as a listed approver who did not register v2: approve, then promote, each with a comment
    comment = approval.locator("textarea[placeholder^='Comment']")
    approve = approval.locator("button:has-text('Approve')")
    comment.fill("reviewed the gates and the deltas: better on every metric")
    comment.press("Tab")
    if approve.is_disabled():  # gates failed or missing: the override is part of the decision
        approval.locator("input[placeholder^='Override']").fill("accepted in review")
        approval.locator("input[placeholder^='Override']").press("Tab")
    approve.click()
    _wait_text(approval, "approve v2, pending → approved")
    comment.fill("promoting after review")
    comment.press("Tab")
    approval.locator("button:has-text('Promote to champion')").click()
    _wait_text(approval, "promote v2, approved → champion")
    lab.screenshot("approval", approval)
    assert_no_widget_errors(lab, "Lab, approval")

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project}/.mlops_wb/mlflow.db")
    assert str(client.get_model_version_by_alias("mlops_wb_model", "champion").version) == "2"

    # 4. save + reload with the kernel alive: the live widgets come back with the charts they had
    saved = lab.save(path)
    want = expected_views(saved)
    assert all(_drawn(v) for v in want), want
    assert "widgets" not in saved["metadata"] or not saved["metadata"]["widgets"].get(
        "application/vnd.jupyter.widget-state+json", {}).get("state"), "widget state must not be saved"
    page.reload()
    page.wait_for_selector(".jp-Notebook", timeout=120_000)
    wait_views(lab, want, state="live", problems=problems, where="Lab reload, kernel alive")
    print(f"Lab, reload with the kernel alive: live, charts {want}")
    assert_no_widget_errors(lab, "Lab, reload with the kernel alive")

    # 5. kernel shut down, notebook reopened (a new kernel, without the widgets): each output is its last state
    lab.shutdown_kernels()
    lab.open("workbench.ipynb")
    got = wait_views(lab, want, state="snapshot", timeout=60, problems=problems, where="Lab reopened, kernel gone")
    print(f"Lab, reopened after the kernel shut down: snapshot, charts {want}, rows {[v['rows'] for v in got]}")
    _wait_text(approval, "promote v2, approved → champion")  # the approval's last state, made before the save
    assert_no_widget_errors(lab, "Lab, reopened after the kernel shut down")

    # 6. a non-approver typing their own cell sees approve disabled, with the reason
    lab.wait_kernel_idle()
    page.locator(".jp-Notebook .jp-Cell").last.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")  # edit mode in the new cell
    page.keyboard.type("from mlops_wb.widgets import DeploymentApproval\nDeploymentApproval(version='1', user='mallory')")
    page.keyboard.press("Shift+Enter")
    mine = page.locator(".jp-Notebook .mlwb-view").nth(3)
    mine.locator("button:has-text('Approve')").wait_for(timeout=90_000)
    assert mine.locator("button:has-text('Approve')").is_disabled()
    mine.get_by_text("may not").filter(visible=True).first.wait_for(timeout=30_000)

    assert_no_widget_errors(lab, "Lab, a new cell in the new kernel")
    assert problems == [], problems + [c for c in lab.console_all if "anywidget" in c.lower()]


NB7_KNOWN = ("reading 'schema'",)  # Notebook 7.6.5 throws this on opening any notebook, with no extension at all


def test_workbench_in_notebook7(lab_factory, project):
    nb7 = lab_factory(project, app="notebook", MLOPS_WB_USER="reviewer")
    page, path = nb7.page, project / "workbench.ipynb"
    problems: list[str] = []
    nb7.open("workbench.ipynb")
    nb7.run_all()
    assert _max_prompt(nb7) > 0 and nb7.cell_errors() == [], nb7.cell_errors()
    wait_views(nb7, None, state="live", problems=problems, where="NB7 run")
    want = expected_views(nb7.save(path))
    assert len(want) == 3 and all(_drawn(v) for v in want), want
    wait_views(nb7, want, state="live", problems=problems, where="NB7 run")
    assert_grid_spans(page.locator(".jp-Notebook .mlwb-view").first, "Notebook 7")
    nb7.screenshot("notebook7", page.locator(".jp-Notebook"))

    page.reload()  # kernel alive: live again
    page.wait_for_selector(".jp-Notebook", timeout=120_000)
    wait_views(nb7, want, state="live", problems=problems, where="NB7 reload, kernel alive")
    nb7.shutdown_kernels()
    page.reload()  # a new kernel: the last state
    page.wait_for_selector(".jp-Notebook", timeout=120_000)
    got = wait_views(nb7, want, state="snapshot", timeout=60, problems=problems, where="NB7 reopened, kernel gone")
    print(f"Notebook 7: live, reload live, reopened after shutdown: snapshot, charts {want}, "
          f"rows {[v['rows'] for v in got]}")
    assert_no_widget_errors(nb7, "Notebook 7", ignore=NB7_KNOWN)
    assert problems == [], problems + [c for c in nb7.console_all if "anywidget" in c.lower()]


def test_papermill_output_and_html_offline(lab_factory, chromium, project):
    env = clean_env(MLOPS_WB_USER="reviewer")
    pm = subprocess.run([str(BIN / "papermill"), "workbench.ipynb", "out.ipynb"], cwd=project, env=env,
                        capture_output=True, text=True, timeout=900)
    assert pm.returncode == 0, pm.stderr[-4000:]
    out = json.loads((project / "out.ipynb").read_text())
    want = expected_views(out)
    assert len(want) == 3 and all(_drawn(v) for v in want), want
    conv = subprocess.run([str(BIN / "jupyter"), "nbconvert", "--to", "html", "out.ipynb"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)
    assert conv.returncode == 0, conv.stderr[-4000:]
    html = project / "out.html"
    size = html.stat().st_size
    assert size < 8_000_000, f"out.html is {size:,} bytes"  # plotly.js once (~1.9 MB packed), not per chart

    # the HTML with the network blocked: only file:// loads
    context = chromium.new_context(viewport={"width": 1400, "height": 2200})
    blocked: list[str] = []

    def route(r):
        if r.request.url.startswith(("file://", "data:", "blob:")):
            return r.continue_()
        blocked.append(r.request.url)
        return r.abort()

    context.route("**/*", route)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(html.as_uri())
        page.wait_for_function(f"() => document.querySelectorAll('.mlwb-static .js-plotly-plot').length >= "
                               f"{sum(len(v) for v in want)}", timeout=90_000)
        got = page.evaluate(HTML_JS)
        (REPO / "tests" / "artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(REPO / "tests" / "artifacts" / "html-offline.png"), full_page=True)
    finally:
        context.close()
    assert got["plots"] == [c for v in want for c in v], got
    assert got["rows"] >= 3 and got["notes"] == 0, got
    assert errors == [], errors
    print(f"papermill + nbconvert: {size:,} bytes of HTML, offline charts {got['plots']}, {got['rows']} table rows, "
          f"blocked {sorted({u.split('?')[0] for u in blocked})}")

    # the papermill output opened in JupyterLab (untrusted, a new kernel): each output is its last state
    lab = lab_factory(project, MLOPS_WB_USER="reviewer")
    lab.open("out.ipynb")
    wait_views(lab, want, state="snapshot", timeout=90)
    assert_no_widget_errors(lab, "the papermill output in Lab")
