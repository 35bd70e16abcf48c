"""The workbench as a user sees it: a real JupyterLab, headless Chromium, the demo's MLflow store.

Opens nbs/workbench.ipynb, runs all cells, then acts in each widget as a person would and checks what it shows and
what MLflow holds afterwards. Screenshots of the three widgets go to docs/screenshots/ (linked from the README), and
to tests/artifacts/ when a test fails.
"""
from __future__ import annotations

import shutil

import pytest

from conftest import REPO

pytestmark = pytest.mark.xdist_group("demo")  # shares the demo project with tests/test_demo.py


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
        locator.get_by_text(text).first.wait_for(timeout=timeout)
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError
        pytest.fail(f"{text!r} never showed; the widget shows:\n{locator.inner_text()[-3000:]}")


def _outputs(lab):
    "The three widget outputs, in notebook order: comparison, drift, approval."
    outs = lab.page.locator(".jp-OutputArea-output:has(.jupyter-widgets)")
    assert outs.count() == 3, f"expected 3 widget outputs, got {outs.count()}"
    return outs.nth(0), outs.nth(1), outs.nth(2)


def test_workbench_in_jupyterlab(lab_factory, project):
    lab = lab_factory(project, MLOPS_WB_USER="reviewer")
    page = lab.page
    lab.open("workbench.ipynb")
    lab.run_all()
    lab.dismiss_toasts()
    assert lab.cell_errors() == [], lab.cell_errors()
    compare, drift, approval = _outputs(lab)

    # every widget rendered real content
    compare.locator("table.dataTable tbody tr").first.wait_for(timeout=60_000)
    drift.locator("text=Share of rows").first.wait_for(timeout=60_000)
    approval.locator("button:has-text('Approve')").wait_for(timeout=60_000)

    # 1. comparison: select two search trials; the diff shows only the params that differ
    rows = compare.locator("table.dataTable tbody tr:has-text('trial-00')")
    rows.nth(0).click()
    rows.nth(1).click()
    _wait_text(compare, "2 runs selected")
    compare.locator(".js-plotly-plot").first.wait_for(timeout=60_000)  # the first selection opens the charts
    diff = compare.locator(".widget-html:has-text('logisticregression__C')").first
    for _ in range(3):  # the kernel may still be switching tabs for the selection; click until the diff shows
        compare.get_by_role("tab", name="Params & metrics").click()
        try:
            diff.wait_for(timeout=15_000)
            break
        except Exception:  # noqa: BLE001 - Playwright's TimeoutError: click again
            continue
    diff.wait_for(timeout=30_000)
    diff_text = diff.inner_text()
    assert "logisticregression__C" in diff_text
    assert "logisticregression__max_iter" not in diff_text  # the same in both runs, so not shown
    lab.screenshot("compare", compare)

    # 2. drift: click a drifted column; its reference/current overlay is drawn
    drift.locator("button:has-text('mean radius')").first.click()
    drift.locator("text=mean radius: drift").first.wait_for(timeout=60_000)
    assert drift.locator(".js-plotly-plot").count() >= 1
    lab.screenshot("drift", drift)

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

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project}/.mlops_wb/mlflow.db")
    assert str(client.get_model_version_by_alias("mlops_wb_model", "champion").version) == "2"

    # 4. a non-approver typing their own cell sees approve disabled, with the reason
    page.locator(".jp-Notebook .jp-Cell").last.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")  # edit mode in the new cell
    page.keyboard.type("DeploymentApproval(version='1', user='mallory')")
    page.keyboard.press("Shift+Enter")
    mine = page.locator(".jp-OutputArea-output:has(.jupyter-widgets)").nth(3)
    mine.locator("button:has-text('Approve')").wait_for(timeout=60_000)
    assert mine.locator("button:has-text('Approve')").is_disabled()
    mine.locator("text=may not").first.wait_for(timeout=30_000)

    js_errors = [e for e in lab.console_errors if "Failed to load resource" not in e]
    assert js_errors == [], js_errors
