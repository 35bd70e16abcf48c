"""Dollar signs in names stay dollar signs: JupyterLab typesets `$...$` as math in HTML outputs and in ipywidgets'
HTML widgets, so a column called `cost $x$ to $y$` would show as "cost x to y" in italics. Every HTML output and
HTML widget snapshot of the workbench is wrapped so MathJax leaves it alone; this test reads what a user sees, live
and after the notebook is reopened without the kernel (the widget's saved snapshot)."""
from __future__ import annotations

import nbformat
import pytest

NAME = "cost $x$ to $y$"

CELLS = [
    "import numpy as np\nimport pandas as pd\n\nfrom mlops_wb.drift import compute_drift\n"
    "from mlops_wb.widgets import DriftDashboard\n\n"
    f"name = {NAME!r}\n"
    "rng = np.random.default_rng(0)\n"
    "reference = pd.DataFrame({name: rng.normal(0, 1, 500), 'plain': rng.normal(0, 1, 500)})\n"
    "current = pd.DataFrame({name: rng.normal(2, 1, 500), 'plain': rng.normal(0, 1, 500)})\n"
    "report = compute_drift(reference=reference, current=current)",
    "report",  # the report's HTML output
    "dashboard = DriftDashboard(report)\ndashboard",
]


def test_dollar_signs_in_names_are_not_typeset_as_math(lab_factory, tmp_path):
    root = tmp_path / "dollars"
    root.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "dollars.ipynb")
    lab = lab_factory(root, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db")
    lab.open("dollars.ipynb")
    lab.run_all()
    assert lab.cell_errors() == [], lab.cell_errors()
    page = lab.page
    outputs = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea")
    outputs.get_by_text(NAME, exact=False).first.wait_for(timeout=60_000)
    dashboard = page.locator(".jp-Notebook .mlwb-view").first
    dashboard.locator(f"tr[data-key='{NAME}']").first.click()
    status = dashboard.locator(".mlwb-status").filter(visible=True)
    try:
        status.get_by_text(f"{NAME} drifted", exact=False).wait_for(timeout=60_000)
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError: say what it shows
        pytest.fail(f"the status never read {NAME!r} drifted; it shows {status.all_inner_texts()}")
    assert_not_typeset(page, "live")
    assert NAME in page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea").inner_text()

    lab.save(root / "dollars.ipynb")
    lab.shutdown_kernels()
    lab.open("dollars.ipynb")  # a new kernel, without the widget: the dashboard shows its snapshot
    snapshot = page.locator(".jp-Notebook .mlwb-view").first
    page.wait_for_function("() => document.querySelector('.jp-Notebook .mlwb-view')?.dataset.mlwbState === 'snapshot'",
                           timeout=60_000)
    snapshot.get_by_text(NAME, exact=False).first.wait_for(timeout=60_000)
    assert_not_typeset(page, "reopened")


def assert_not_typeset(page, where: str) -> None:
    "No part of any output was typeset by MathJax (it works asynchronously: give it the time it would take)."
    page.wait_for_timeout(3000)
    typeset = page.locator(".jp-Notebook .jp-OutputArea mjx-container, .jp-Notebook .jp-OutputArea .MathJax")
    shown = typeset.evaluate_all("els => els.map(e => e.closest('.jp-OutputArea-output').innerText.slice(0, 80))")
    assert shown == [], f"{where}: MathJax typeset {len(shown)} piece(s) of the outputs as math: {shown}"
