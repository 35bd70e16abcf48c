"""The README's demo command, end to end on the embedded store, checked with MLflow's own client."""
from __future__ import annotations

import getpass
import subprocess

import pytest

from conftest import BIN, REPO, clean_env

pytestmark = pytest.mark.xdist_group("demo")  # one worker runs the demo once for these tests and the browser tests


def _client(root):
    from mlflow import MlflowClient
    return MlflowClient(tracking_uri=f"sqlite:///{root}/.mlops_wb/mlflow.db")


def test_demo_records_every_stage(demo_project):
    log = (demo_project / "demo-first-run.log").read_text()
    assert "pipeline demo (finished" in log and "pipeline retrain (finished" in log, log[-2000:]
    assert "monitor: ALERT, the batch drifted" in log
    assert f"mlflow ui --backend-store-uri sqlite:///{demo_project}/.mlops_wb/mlflow.db" in log
    assert "  jupyter lab workbench.ipynb   (compare runs, watch drift, approve)" in log  # copied into the project
    assert (demo_project / "workbench.ipynb").read_bytes() == (REPO / "nbs" / "workbench.ipynb").read_bytes()
    assert "  mlops-wb approve mlops_wb_model 2 --comment '...'" in log
    client = _client(demo_project)
    exp = client.get_experiment_by_name("mlops_wb pipelines")
    steps = client.search_runs([exp.experiment_id], filter_string="tags.`mlops_wb.step` LIKE '%'")
    by_step = {}
    for r in steps:
        by_step.setdefault(r.data.tags["mlops_wb.step"], []).append(r)
    assert set(by_step) == {"ingest", "train", "evaluate", "register", "monitor"}
    for name, runs in by_step.items():
        for r in runs:
            assert r.info.status == "FINISHED", (name, r.data.tags.get("mlops_wb.error"))
            assert r.info.user_id == getpass.getuser(), (name, r.info.user_id)  # who ran it; not $MLOPS_WB_USER
            arts = [a.path for a in client.list_artifacts(r.info.run_id, "notebook")]
            assert len(arts) == 1 and arts[0].endswith(".ipynb"), (name, arts)  # the executed notebook
    monitor = by_step["monitor"][0]
    assert monitor.data.params["alert"] == "True" and monitor.data.metrics["drift_share"] > 0.5
    # the registry: v1 approved by the demo policy and champion; the retrained v2 waits for a person
    mv = client.get_model_version_by_alias("mlops_wb_model", "champion")
    assert mv.version in (1, "1")
    v2 = client.get_model_version("mlops_wb_model", "2")
    assert v2.tags["mlops_wb.status"] == "pending"
    # training runs: a search parent with nested trials, models loadable by URI
    train = client.get_experiment_by_name("mlops_wb")
    trials = client.search_runs([train.experiment_id], filter_string="tags.mlflow.parentRunId LIKE '%'")
    assert len(trials) >= 8  # two searches of 4 trials


def test_demo_twice_reuses_unchanged_steps(demo_project):
    r = subprocess.run([str(BIN / "mlops-wb"), "demo"], cwd=demo_project, env=clean_env(MLOPS_WB_USER="data-scientist"),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert ("pipeline demo (finished" in r.stdout and "ingest skipped, train skipped, evaluate skipped, register skipped, "
            "monitor skipped" in r.stdout), r.stdout
    assert "train skipped, evaluate skipped, register skipped" in r.stdout.split("pipeline retrain")[1]
    assert len(_client(demo_project).search_model_versions("name = 'mlops_wb_model'")) == 2  # nothing registered twice


def test_workbench_runs_under_papermill_and_leaves_static_output(demo_project, tmp_path):
    import json

    out = tmp_path / "workbench-out.ipynb"
    r = subprocess.run([str(BIN / "papermill"), str(REPO / "nbs" / "workbench.ipynb"), str(out), "-k", "python3",
                        "--cwd", str(demo_project)], env=clean_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    cells = [c for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code"]
    # the widgets' persistent outputs (the extension is installed by `make install-dev`, as a wheel installs it)
    widgets = [o for c in cells for o in c.get("outputs", []) if "application/vnd.mlops-wb.view+json" in o.get("data", {})]
    assert len(widgets) == 3, [sorted(o.get("data", {})) for c in cells for o in c.get("outputs", [])]
    for o in widgets:  # every widget leaves HTML that shows without a kernel or widget state
        assert len("".join(o["data"]["text/html"])) > 500
