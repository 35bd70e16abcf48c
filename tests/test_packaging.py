"""The wheel ships what users need: every subpackage, the pipeline notebooks `mlops-wb run NAME` finds, and the
widgets' front-end (the top-level widgets/ folder and the prebuilt JupyterLab / Notebook 7 extension)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile

import pytest

from conftest import REPO, clean_env


def test_every_subpackage_is_listed():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {"mlops_wb." + ".".join(p.parent.relative_to(REPO / "mlops_wb").parts)
               for p in (REPO / "mlops_wb").rglob("__init__.py") if p.parent != REPO / "mlops_wb"}
    missing = on_disk - listed
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml, or they won't ship"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    "The wheel, built from this checkout with `uv build`."
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, "-m", "uv", "build", "--wheel", "-q", "-o", str(out), str(REPO)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return next(out.glob("*.whl"))


FRONTEND = ["common.js", "common.css", "grid/index.js", "grid/style.css", "table/index.js", "table/style.css",
            "timeline/index.js", "timeline/style.css"]


def test_wheel_ships_pipeline_notebooks(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("mlops_wb/pipeline_notebooks/") and n.endswith(".ipynb"))
    expected = sorted(p.name for p in (REPO / "nbs" / "pipelines").glob("*.ipynb"))
    assert expected and shipped == expected, f"wheel ships {shipped}, expected {expected}"
    assert "mlops_wb/cli/__init__.py" in names and "mlops_wb/widgets/__init__.py" in names


def test_wheel_ships_the_widgets_front_end(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in FRONTEND if f"mlops_wb/frontend/{f}" not in names]
    assert not missing, f"the wheel lacks the widgets' front-end files {missing}"
    assert not [n for n in names if "node_modules" in n or n.startswith("mlops_wb/frontend/extension/")]
    data = next(n.split("/data/", 1)[0] for n in names if ".data/data/" in n) + "/data/share/jupyter/labextensions/mlops-wb/"
    static = sorted(p.name for p in (REPO / "widgets" / "labextension" / "static").iterdir())
    shipped = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith(data + "static/"))
    assert data + "package.json" in names and shipped == static, (shipped, static)


@pytest.mark.xdist_group("demo")  # heavy: beside the other heavy tests, never at the same time
def test_installed_wheel_loads_the_front_end_from_its_own_path(wheel, tmp_path):
    venv, work = tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    r = subprocess.run([sys.executable, "-m", "uv", "venv", "-q", "--python", sys.executable, str(venv)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "uv", "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
                        str(wheel)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    env = clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=str(venv))
    env.pop("PYTHONPATH", None)
    env.pop("MLOPS_WB_WIDGET_OUTPUT", None)
    code = ("import json, mlops_wb\nfrom mlops_wb.widgets.base import asset\n"
            "from mlops_wb.widgets.view import extension_installed, output_mode\n"
            f"print(json.dumps({{'file': mlops_wb.__file__, 'assets': {{f: asset(f) for f in {FRONTEND!r}}}, "
            "'extension': extension_installed(), 'mode': output_mode()}))")
    r = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, env=env, cwd=work,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["file"].startswith(str(venv)), f"the fresh venv must import its own mlops_wb: {got['file']}"
    for f in FRONTEND:
        assert got["assets"][f] == (REPO / "widgets" / f).read_text(encoding="utf-8"), f
    assert got["extension"] is True and got["mode"] == "persistent", got  # the extension is where Jupyter looks
    assert (venv / "share" / "jupyter" / "labextensions" / "mlops-wb" / "package.json").is_file()
