"""The notebooks are the source: the library must be what nbdev-export makes of them, and they must be clean."""
from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BIN, REPO

NOTEBOOKS = sorted(p for p in (REPO / "nbs").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
# workbench.ipynb needs a project with a store: tests/test_demo.py runs it under papermill on the demo's store
MODULE_NOTEBOOKS = [p for p in NOTEBOOKS if p.parent == REPO / "nbs" and not p.name.startswith("_")
                    and p.name != "workbench.ipynb"]


def _copy_project(dst: Path) -> None:
    for name in ("pyproject.toml", "settings.ini", "README.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, dst / name)
    shutil.copytree(REPO / "nbs", dst / "nbs", ignore=shutil.ignore_patterns(".ipynb_checkpoints", "*.db"))
    shutil.copytree(REPO / "mlops_wb", dst / "mlops_wb", ignore=shutil.ignore_patterns("__pycache__"))


def _tree_diff(a: Path, b: Path) -> list[str]:
    "Relative paths of files that differ, or exist on one side only (ignoring caches)."
    def files(root: Path) -> set[Path]:
        return {p.relative_to(root) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    fa, fb = files(a), files(b)
    out = sorted(str(p) + " (only in the library)" for p in fa - fb)
    out += sorted(str(p) + " (missing from the library)" for p in fb - fa)
    out += sorted(str(p) for p in fa & fb if not filecmp.cmp(a / p, b / p, shallow=False))
    return out


def test_library_in_sync_with_notebooks(tmp_path):
    _copy_project(tmp_path)
    r = subprocess.run([str(BIN / "nbdev-export")], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    diff = _tree_diff(REPO / "mlops_wb", tmp_path / "mlops_wb")
    assert not diff, ("mlops_wb/ is out of sync with the notebooks in nbs/ (" + ", ".join(diff) + "). "
                      "Run `nbdev-export` (or `make export`) and commit the regenerated files; "
                      "never edit mlops_wb/*.py by hand.")
    assert (tmp_path / "pyproject.toml").read_text() == (REPO / "pyproject.toml").read_text(), (
        "nbdev-export rewrote pyproject.toml: run `nbdev-export` and commit the result.")


def test_notebooks_clean(tmp_path):
    _copy_project(tmp_path)
    r = subprocess.run([str(BIN / "nbdev-clean")], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    changed = [str(p.relative_to(REPO)) for p in NOTEBOOKS
               if (REPO / p.relative_to(REPO)).read_bytes() != (tmp_path / p.relative_to(REPO)).read_bytes()]
    assert not changed, f"nbdev-clean would change {changed}: run `nbdev-clean` (or `make export`) and commit."


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO / "nbs")))
def test_notebook_committed_without_outputs_or_widget_state(nb):
    data = json.loads(nb.read_text())
    assert "widgets" not in data.get("metadata", {}), f"{nb.name} holds widget state: clear it before committing."
    with_outputs = [i for i, c in enumerate(data["cells"]) if c.get("outputs")]
    assert not with_outputs, f"{nb.name} has outputs in cells {with_outputs}: clear them before committing."


@pytest.mark.parametrize("nb", MODULE_NOTEBOOKS, ids=lambda p: p.name)
@pytest.mark.xdist_group("notebooks")  # one worker executes them all, N at a time, once (conftest.py)
@pytest.mark.timeout(3600)  # the first of these tests waits for every selected notebook to run
def test_notebook_runs(nb, executed_notebooks):
    """Each module notebook's examples are its tests. The session executes each notebook once, in a process of its
    own with nbdev-test's cells and shell (docs/run_notebooks.py), and the docs site renders those executed copies."""
    r = executed_notebooks[nb.relative_to(REPO / "nbs").as_posix()]
    assert r.ok, f"{nb.name} failed (`nbdev-test nbs/{nb.name}` shows the same):\n{r.error}"


def test_ruff_clean():
    r = subprocess.run([str(BIN / "ruff"), "check", "mlops_wb", "tests", "bench"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, "ruff found problems; fix them (the library in the notebooks, then export):\n" + r.stdout[-4000:]


def test_import_is_light():
    "`import mlops_wb` (and its core) must not pull in the heavy stack."
    heavy = ["mlflow", "plotly", "papermill", "jupyter_client", "jupyter_core", "sklearn", "ipywidgets", "scipy"]
    code = ("import sys, mlops_wb, mlops_wb.core; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]", f"import mlops_wb pulled in {r.stdout.strip()}; import those lazily."
