"""The wheel ships what users need: every subpackage, and the pipeline notebooks `mlops-wb run NAME` finds."""
from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile

from conftest import REPO


def test_every_subpackage_is_listed():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {"mlops_wb." + ".".join(p.parent.relative_to(REPO / "mlops_wb").parts)
               for p in (REPO / "mlops_wb").rglob("__init__.py") if p.parent != REPO / "mlops_wb"}
    missing = on_disk - listed
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml, or they won't ship"


def test_wheel_ships_pipeline_notebooks(tmp_path):
    r = subprocess.run([sys.executable, "-m", "uv", "build", "--wheel", "-q", "-o", str(tmp_path), str(REPO)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    wheel = next(tmp_path.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("mlops_wb/pipeline_notebooks/") and n.endswith(".ipynb"))
    expected = sorted(p.name for p in (REPO / "nbs" / "pipelines").glob("*.ipynb"))
    assert expected and shipped == expected, f"wheel ships {shipped}, expected {expected}"
    assert "mlops_wb/cli/__init__.py" in names and "mlops_wb/widgets/__init__.py" in names
