"""`mlops-wb gate` as CI runs it: the console script, a real MLflow store with registered models, JUnit XML, the
Markdown job summary, the exit codes, the gate_failed alert at a real receiver, and a pipeline that stops on a failed
gate so that `mlops-wb pipeline` exits non-zero."""
from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET

import pytest
from alert_receivers import RECEIVER_SECRET

from conftest import BIN, clean_env

MLOPS_WB = str(BIN / "mlops-wb")


def gate(*args, cwd, **env):
    return subprocess.run([MLOPS_WB, "gate", *args], cwd=cwd, env=clean_env(**env), capture_output=True, text=True,
                          timeout=600)


@pytest.fixture
def models(tmp_path, tracking_uri):
    "A project with the breast-cancer test split and a registered model: v1 good (champion), v2 trained on noise."
    import mlflow
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from mlops_wb.core import get_client

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    Xte.assign(target=yte).to_parquet(tmp_path / "test.parquet")
    Xtr.assign(target=ytr).to_parquet(tmp_path / "train.parquet")
    client = get_client(tracking_uri)
    exp = client.create_experiment("train", artifact_location=(tmp_path / "store" / "artifacts").as_uri())
    mlflow.set_tracking_uri(tracking_uri)
    runs = {}
    for name, labels in (("good", ytr), ("noise", ytr.sample(frac=1, random_state=1).to_numpy())):
        with mlflow.start_run(experiment_id=exp) as r:
            mlflow.sklearn.log_model(LogisticRegression(max_iter=5000).fit(Xtr, labels), name="model",
                                     pip_requirements=["scikit-learn"], serialization_format="cloudpickle")
        runs[name] = r.info.run_id
    client.create_registered_model("cancer")
    for name in ("good", "noise"):
        client.create_model_version("cancer", f"runs:/{runs[name]}/model", run_id=runs[name])
    client.set_registered_model_alias("cancer", "champion", "1")
    (tmp_path / "settings.ini").write_text(f"[tracking]\nuri = {tracking_uri}\n[registry]\nmodel_name = cancer\n")
    return {"root": tmp_path, "runs": runs, "client": client}


def test_a_passing_candidate_exits_0_with_junit_and_the_job_summary(models):
    root, runs = models["root"], models["runs"]
    summary = root / "step_summary.md"
    summary.write_text("# earlier steps\n")
    r = gate("--candidate", f"runs:/{runs['good']}/model", "--data", "test.parquet",
             "--champion", "none", "--junit", "reports/gates.xml", "--summary", "reports/gates.md", cwd=root,
             GITHUB_STEP_SUMMARY=str(summary))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(f"Quality gates passed for runs:/{runs['good']}/model (no champion) on 171 rows")
    suites = ET.parse(root / "reports" / "gates.xml").getroot()
    (suite,) = suites.findall("testsuite")
    cases = suite.findall("testcase")
    names = [c.get("name") for c in cases]
    assert names[:2] == ["improvement.roc_auc", "slice.worst"] and "data.drift" in names
    assert suites.get("tests") == str(len(cases)) and suites.get("failures") == "0"
    assert suite.find("testcase[@name='improvement.roc_auc']/skipped").get("message") == (
        "No champion to compare with: skipped.")
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["candidate"] == f"runs:/{runs['good']}/model" and props["passed"] == "true"
    text = summary.read_text()
    assert text.startswith("# earlier steps\n## ✅ Quality gates passed\n")  # appended, as GitHub expects
    assert (root / "reports" / "gates.md").read_text() in text
    assert models["client"].get_run(runs["good"]).data.tags["mlops_wb.gates.passed"] == "true"


def test_a_failing_candidate_exits_1_and_alerts(models, http_receiver):
    root, runs = models["root"], models["runs"]
    with open(root / "settings.ini", "a") as f:
        f.write(f"[alerts]\nchannels = webhook\nwebhook_urls = {http_receiver.url('/hook')}\n")
    r = gate("--candidate", "models:/cancer/2", "--data", "test.parquet", "--junit", "gates.xml",
             "--summary", "gates.md", cwd=root, MLOPS_WB_WEBHOOK_SECRET=RECEIVER_SECRET)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Quality gates FAILED for models:/cancer/2 against models:/cancer/1 on 171 rows" in r.stdout
    assert f"Logged the gate report to run {runs['noise']}." in r.stderr
    suite = ET.parse(root / "gates.xml").getroot().find("testsuite")
    failure = suite.find("testcase[@name='improvement.roc_auc']/failure")
    assert failure.get("type") == "GateFailed"
    assert failure.get("message").startswith("improvement.roc_auc: measured -0.") and \
        failure.get("message").endswith(", threshold >= 0")
    assert "threshold: >= 0" in failure.text and "measured value: -0." in failure.text
    assert "| `improvement.roc_auc` | ❌ **fail** |" in (root / "gates.md").read_text()
    assert models["client"].get_run(runs["noise"]).data.tags["mlops_wb.gates.passed"] == "false"
    (req,) = http_receiver.on("/hook")
    assert req.signature_ok and req.headers["X-Mlops-Wb-Event"] == "gate_failed"
    alert = req.json
    assert alert["subject"].startswith("models:/cancer/2 failed ") and alert["details"]["run_id"] == runs["noise"]
    assert alert["details"]["failed"][0].startswith("improvement.roc_auc: measured -0.")

    # the same report, read back as a pipeline's CI job would: no second alert
    r = gate("--from", "models:/cancer/2", "--json", cwd=root, MLOPS_WB_WEBHOOK_SECRET=RECEIVER_SECRET)
    assert r.returncode == 1 and json.loads(r.stdout)["candidate"] == "models:/cancer/2"
    assert len(http_receiver.requests) == 1


def test_from_latest_reads_the_newest_report_and_in_ci_only_this_jobs(models):
    root, runs = models["root"], models["runs"]
    assert gate("--candidate", "models:/cancer/2", "--data", "test.parquet", cwd=root).returncode == 1
    r = gate("--from", "latest", cwd=root)
    assert r.returncode == 1 and "Quality gates FAILED for models:/cancer/2" in r.stdout
    job = dict(GITHUB_ACTIONS="true", GITHUB_RUN_ID="777", GITHUB_REPOSITORY="acme/cancer")
    r = gate("--from", "latest", cwd=root, **job)
    assert r.returncode == 3
    assert r.stderr.strip() == ("Error: No gate report was logged by this CI job (github:acme/cancer/777/1). Run the "
                                "evaluate step (or `mlops-wb gate --candidate ...`) first.")
    r = gate("--candidate", f"runs:/{runs['good']}/model", "--data", "test.parquet", "--champion", "none",
             cwd=root, **job)
    assert r.returncode == 0
    assert models["client"].get_run(runs["good"]).data.tags["mlops_wb.gates.ci_job"] == "github:acme/cancer/777/1"
    r = gate("--from", "latest", cwd=root, **job)
    assert r.returncode == 0 and f"Quality gates passed for runs:/{runs['good']}/model" in r.stdout


@pytest.mark.parametrize(("args", "code", "message"), [
    ((), 2, "pass --candidate and --data to evaluate a model, or --from to read a logged report"),
    (("--from", "latest", "--candidate", "models:/cancer/1"), 2, "pass either --from, or --candidate and --data"),
    (("--candidate", "models:/cancer/1", "--data", "missing.parquet"), 3, "Error: No file at"),
    (("--candidate", "models:/cancer/9", "--data", "test.parquet"), 3, "Error: Could not load the model 'models:/cancer/9'"),
    (("--from", "models:/cancer/1"), 3, "has no gate report: evaluate the candidate first"),
    (("--from", "no-such-thing"), 3, "The '--from' parameter of mlops-wb gate must be a run id"),
])
def test_exit_codes_of_errors(models, args, code, message):
    r = gate(*args, cwd=models["root"])
    assert r.returncode == code, r.stdout + r.stderr
    assert message in " ".join(re.sub("[│╭╮╰╯─]", " ", r.stderr).split())  # usage errors come in a box
    assert "Traceback" not in r.stderr


def test_a_failed_gate_stops_the_pipeline(tmp_path, tracking_uri):
    "evaluate.ipynb with fail_on_gate: the step's run is FAILED, the pipeline stops, `mlops-wb pipeline` exits 1."
    from mlflow import MlflowClient

    (tmp_path / "settings.ini").write_text(f"[tracking]\nuri = {tracking_uri}\n[gates]\nmin_metrics = roc_auc:0.9999\n")
    (tmp_path / "pipeline.yaml").write_text("""name: gated
steps:
  ingest: {notebook: ingest, parameters: {dataset: breast_cancer, out_dir: work, batch_size: 0}}
  train:
    notebook: train
    needs: [ingest]
    parameters: {train_path: "${ingest.train_path}", test_path: "${ingest.test_path}"}
  evaluate:
    notebook: evaluate
    needs: [ingest, train]
    parameters: {model_uri: "${train.model_uri}", run_id: "${train.run_id}", test_path: "${ingest.test_path}",
                 train_path: "${ingest.train_path}", fail_on_gate: true}
  register:
    notebook: register
    needs: [train, evaluate]
    parameters: {model_uri: "${train.model_uri}", gates_passed: "${evaluate.passed}"}
""")
    r = subprocess.run([MLOPS_WB, "pipeline", "pipeline.yaml"], cwd=tmp_path, env=clean_env(), capture_output=True,
                       text=True, timeout=1500)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Pipeline 'gated' stopped at step 'evaluate'" in r.stderr and "Not run: register" in r.stderr
    assert "GateFailedError" in r.stderr and "min.roc_auc = 0.9" in r.stderr and "(must be >= 0.9999)" in r.stderr
    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name("mlops_wb")
    steps = {r.data.tags.get("mlops_wb.step"): r for r in client.search_runs([exp.experiment_id])}
    assert steps["evaluate"].info.status == "FAILED"
    assert "register" not in steps
    train_run = steps["train"].data.params.get("run_id") or steps["evaluate"].data.params["run_id"]
    assert client.get_run(train_run).data.tags["mlops_wb.gates.passed"] == "false"  # logged before it stopped
    r = gate("--from", "latest", cwd=tmp_path)
    assert r.returncode == 1 and "min.roc_auc" in r.stdout
