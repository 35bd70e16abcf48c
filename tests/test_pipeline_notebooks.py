"""Every shipped pipeline notebook runs with plain `papermill` (no runner), with small parameters, in a fresh project."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import BIN, REPO, clean_env

PIPELINES = REPO / "nbs" / "pipelines"
pytestmark = pytest.mark.xdist_group("papermill-pipelines")


def papermill(name, project, uri, **params):
    args = [str(BIN / "papermill"), str(PIPELINES / f"{name}.ipynb"), str(project / f"{name}-out.ipynb"),
            "-k", "python3", "--cwd", str(project)]
    for k, v in params.items():
        args += ["-p", k, str(v)]
    r = subprocess.run(args, env=clean_env(MLFLOW_TRACKING_URI=uri, MLOPS_WB_USER="data-scientist"),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"papermill {name} failed:\n{r.stderr[-4000:]}"
    return json.loads((project / f"{name}-out.ipynb").read_text())


def test_pipeline_notebooks_under_plain_papermill(tmp_path, tracking_uri):
    from mlflow import MlflowClient

    (tmp_path / "settings.ini").write_text("[approval]\napprovers = reviewer\nauto_approve = true\n"
                                           "automation_user = demo-pipeline\nallow_declared_user = true\n")
    work = tmp_path / "work"
    papermill("ingest", tmp_path, tracking_uri, dataset="wine", out_dir=work, batch_size=0.3)
    assert {p.name for p in work.iterdir()} >= {"train.parquet", "test.parquet", "schema.json", "batch.parquet"}
    papermill("train", tmp_path, tracking_uri, train_path=work / "train.parquet", test_path=work / "test.parquet",
              model="random_forest", experiment="papermill")
    client = MlflowClient(tracking_uri=tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("papermill").experiment_id])
    model_uri = run.outputs.model_outputs[0].model_id if run.outputs and run.outputs.model_outputs else None
    model_uri = f"models:/{model_uri}" if model_uri else f"runs:/{run.info.run_id}/model"
    papermill("evaluate", tmp_path, tracking_uri, model_uri=model_uri, run_id=run.info.run_id,
              test_path=work / "test.parquet", train_path=work / "train.parquet", sensitive_from="alcohol")
    passed = client.get_run(run.info.run_id).data.tags["mlops_wb.gates.passed"] == "true"  # logged by evaluate
    papermill("register", tmp_path, tracking_uri, model_uri=model_uri, gates_passed=str(passed), auto_approve="True")
    v1 = client.get_model_version("mlops_wb_model", "1")
    assert v1.tags["mlops_wb.status"] == ("champion" if passed else "pending")  # auto-approval only on passed gates
    out = papermill("monitor", tmp_path, tracking_uri, reference_path=work / "train.parquet",
                    current_path=work / "batch.parquet", shift=0.0, out_dir=tmp_path / "monitor")
    text = "".join("".join(o.get("text", "")) for c in out["cells"] for o in c.get("outputs", []))
    # the batch is a random split of the same data, unshifted: the one right answer is no drift
    assert "no data-set drift" in text and "ALERT" not in text, text[-2000:]
