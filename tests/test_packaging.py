"""The wheel ships what users need, and works as users install it: built, installed into a fresh venv, run from an
empty folder (the demo, a pipeline, the workbench notebook under papermill), with the widgets' front-end (the
top-level widgets/ folder and the prebuilt JupyterLab / Notebook 7 extension) loaded from its own path."""
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


def test_wheel_ships_pipeline_and_workbench_notebooks(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("mlops_wb/pipeline_notebooks/") and n.endswith(".ipynb"))
    expected = sorted(p.name for p in (REPO / "nbs" / "pipelines").glob("*.ipynb"))
    assert expected and shipped == expected, f"wheel ships {shipped}, expected {expected}"
    assert "mlops_wb/pipeline_notebooks/demo.yaml" in names
    assert "mlops_wb/notebooks/workbench.ipynb" in names
    assert not [n for n in names if n.startswith("mlops_wb/notebooks/") and n != "mlops_wb/notebooks/workbench.ipynb"]
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


@pytest.mark.xdist_group("demo")  # beside the other heavy demo tests, never at the same time
def test_wheel_in_a_fresh_venv_runs_the_demo_a_pipeline_and_the_workbench(wheel, tmp_path):
    from mlflow import MlflowClient

    venv, project = tmp_path / "venv", tmp_path / "project"
    project.mkdir()
    # a fresh venv with the wheel and its dependencies, from uv's cache (seconds, not minutes), compiled to bytecode
    # as `pip install` compiles it
    r = subprocess.run([sys.executable, "-m", "uv", "venv", "-q", "--python", sys.executable, str(venv)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "uv", "pip", "install", "-q", "--compile-bytecode",
                        "--python", str(venv / "bin" / "python"), str(wheel)], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr
    env = clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=str(venv),
                    MLOPS_WB_USER="data-scientist")
    env.pop("PYTHONPATH", None)
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import mlops_wb; print(mlops_wb.__file__)"],
                           capture_output=True, text=True, env=env, cwd=project)
    assert where.stdout.startswith(str(venv)), f"the fresh venv must import its own mlops_wb: {where.stdout}{where.stderr}"
    # the widgets' front-end, from the installed package's own path; the extension where Jupyter looks
    code = ("import json\nfrom mlops_wb.widgets.base import asset\n"
            "from mlops_wb.widgets.view import extension_installed, output_mode\n"
            f"print(json.dumps({{'assets': {{f: asset(f) for f in {FRONTEND!r}}}, "
            "'extension': extension_installed(), 'mode': output_mode()}))")
    fe_env = {k: v for k, v in env.items() if k != "MLOPS_WB_WIDGET_OUTPUT"}
    r = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, env=fe_env,
                       cwd=project, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    for f in FRONTEND:
        assert got["assets"][f] == (REPO / "widgets" / f).read_text(encoding="utf-8"), f
    assert got["extension"] is True and got["mode"] == "persistent", got
    assert (venv / "share" / "jupyter" / "labextensions" / "mlops-wb" / "package.json").is_file()

    def cli(*args, timeout=1800):
        return subprocess.run([str(venv / "bin" / "mlops-wb"), *args], cwd=project, env=env, capture_output=True,
                              text=True, timeout=timeout)

    demo = cli("demo")
    assert demo.returncode == 0, f"mlops-wb demo failed:\n{demo.stdout[-3000:]}\n{demo.stderr[-5000:]}"
    assert "pipeline demo (finished" in demo.stdout and "pipeline retrain (finished" in demo.stdout, demo.stdout
    assert "  jupyter lab workbench.ipynb   (compare runs, watch drift, approve)" in demo.stdout, demo.stdout
    assert (project / "workbench.ipynb").read_bytes() == (REPO / "nbs" / "workbench.ipynb").read_bytes()
    ingest = cli("run", "ingest", "-p", "dataset", "wine", "-p", "out_dir", "wine-data")
    assert ingest.returncode == 0 and "ingest: FINISHED" in ingest.stdout, ingest.stderr[-3000:]
    assert (project / "wine-data" / "train.parquet").exists()
    out = project / "workbench-out.ipynb"
    pm = subprocess.run([str(venv / "bin" / "papermill"), "workbench.ipynb", str(out)], cwd=project, env=env,
                        capture_output=True, text=True, timeout=900)
    assert pm.returncode == 0, pm.stderr[-4000:]
    executed = json.loads(out.read_text())
    assert not [o for c in executed["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]

    client = MlflowClient(tracking_uri=f"sqlite:///{project}/.mlops_wb/mlflow.db")
    versions = {str(v.version): v.tags.get("mlops_wb.status") for v in client.search_model_versions("name = 'mlops_wb_model'")}
    assert versions == {"1": "champion", "2": "pending"}, versions
    pipelines = client.get_experiment_by_name("mlops_wb pipelines")
    steps = client.search_runs([pipelines.experiment_id], filter_string="tags.`mlops_wb.step` LIKE '%'")
    assert len(steps) == 8 and {r.info.status for r in steps} == {"FINISHED"}, [(r.info.run_name, r.info.status) for r in steps]
    (wine,) = client.search_runs([client.get_experiment_by_name("mlops_wb").experiment_id],
                                 filter_string="params.dataset = 'wine'")
    assert wine.info.status == "FINISHED" and wine.data.metrics["rows"] == 178.0
    assert wine.data.tags["mlflow.source.name"].startswith(str(venv)), "the notebook must come from the installed wheel"
