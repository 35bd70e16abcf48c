"""`mlops-wb monitor` on a schedule, as a user runs it: a reference profile stored in MLflow, batches from a file, a
Parquet folder and a glob, prediction drift and performance of a registered champion, labels joined later, a drift
alert at a real receiver, a retraining pipeline, and records any colleague can open: the history and the latest
report read from a second, empty folder that shares only a real `mlflow server`."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from alert_receivers import RECEIVER_SECRET

from conftest import BIN, clean_env

MLOPS_WB = str(BIN / "mlops-wb")
SHIFTED = ["mean radius", "mean perimeter", "mean area", "worst radius", "worst perimeter", "worst area",
           "mean concavity", "mean concave points", "worst concavity", "worst concave points", "mean texture",
           "worst texture", "radius error", "perimeter error", "area error", "mean compactness"]


def mw(*args, cwd, env=None, check=True):
    r = subprocess.run([MLOPS_WB, *args], cwd=cwd, env=env or clean_env(), capture_output=True, text=True,
                       timeout=900)
    if check:
        assert r.returncode == 0, f"mlops-wb {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def cancer_frames():
    "Training data and three later batches (the second one shifted) of the breast-cancer data, with an id column."
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    data = X.assign(target=y, id=np.arange(len(X)))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data))
    train, b1, b2, b3 = (data.iloc[order[i:j]] for i, j in ((0, 260), (260, 360), (360, 460), (460, 569)))
    b2 = b2.copy()
    for c in SHIFTED:
        b2[c] = b2[c] + 1.5 * train[c].std()
    return train, b1, b2, b3


def log_champion(uri: str, train, name: str) -> str:
    "A logistic regression trained on `train`, logged and registered as `name` v1 with the champion alias."
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from mlops_wb.core import ensure_experiment, get_client

    client = get_client(uri)
    exp = ensure_experiment(f"train-{name}", client=client)
    old = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        features = [c for c in train.columns if c not in ("target", "id")]
        with mlflow.start_run(experiment_id=exp) as run:
            info = mlflow.sklearn.log_model(LogisticRegression(max_iter=5000).fit(train[features], train["target"]),
                                            name="model", pip_requirements=["scikit-learn"],
                                            serialization_format="cloudpickle")
    finally:
        mlflow.set_tracking_uri(old)
    client.create_registered_model(name)
    client.create_model_version(name, client.get_logged_model(info.model_id).artifact_location,
                                run_id=run.info.run_id, model_id=info.model_id)
    client.set_registered_model_alias(name, "champion", "1")
    return f"models:/{name}@champion"


@pytest.fixture
def monitored(tmp_path, tracking_uri, http_receiver):
    "A project with a champion, its reference profile in the store, and three batches monitored by the console script."
    train, b1, b2, b3 = cancer_frames()
    root = tmp_path / "project"
    (root / "batches" / "day-2").mkdir(parents=True)
    train.to_parquet(root / "train.parquet")
    b1.to_csv(root / "batches" / "day-1.csv", index=False)
    unlabelled = b2.drop(columns="target")
    for i, part in enumerate(np.array_split(np.arange(len(unlabelled)), 3)):
        unlabelled.iloc[part].to_parquet(root / "batches" / "day-2" / f"part-{i}.parquet")
    b2[["id", "target"]].to_csv(root / "labels-day-2.csv", index=False)
    half = len(b3) // 2
    b3.iloc[:half].to_csv(root / "batches" / "day-3-a.csv", index=False)
    b3.iloc[half:].to_csv(root / "batches" / "day-3-b.csv", index=False)
    (root / "settings.ini").write_text(f"[tracking]\nuri = {tracking_uri}\n[monitor]\nname = cancer\nkey = id\n"
                                       f"[alerts]\nchannels = webhook\nwebhook_urls = {http_receiver.url('/hook')}\n")
    model = log_champion(tracking_uri, train, "cancer")
    env = clean_env(MLOPS_WB_WEBHOOK_SECRET=RECEIVER_SECRET)
    ref = mw("monitor", "reference", "train.parquet", "--model", model, "--target", "target", "--key", "id",
             cwd=root, env=env).stdout.strip()
    assert ref.startswith("runs:/") and ref.endswith("/monitor/reference_profile.json")
    text = (root / "settings.ini").read_text().replace("key = id\n", f"key = id\nreference = {ref}\n")
    (root / "settings.ini").write_text(text)
    runs = {}
    for day, batch, extra in (("day-1", "batches/day-1.csv", ["--target", "target"]),
                              ("day-2", "batches/day-2", ["--fail-on-drift"]),
                              ("day-3", "batches/day-3-*.csv", ["--target", "target"])):
        r = mw("monitor", batch, "--model", model, "--batch-id", day, "--batch-time", f"2024-06-0{day[-1]}", "--json",
               *extra, cwd=root, env=env, check=False)
        assert r.returncode == (3 if day == "day-2" else 0), r.stdout + r.stderr
        runs[day] = json.loads(r.stdout)
    return {"root": root, "runs": runs, "env": env, "model": model, "uri": tracking_uri, "receiver": http_receiver,
            "b2": b2}


def test_monitor_logs_drift_prediction_drift_and_performance(monitored):
    from mlflow import MlflowClient

    runs = monitored["runs"]
    d1, d2, d3 = runs["day-1"], runs["day-2"], runs["day-3"]
    assert (d1["dataset_drift"], d1["prediction_drift"], d1["rows"]) == (False, False, 100)
    assert (d2["dataset_drift"], d2["prediction_drift"]) == (True, True)
    assert set(SHIFTED) <= set(d2["drifted_columns"])
    assert d3["rows"] == 109 and d3["dataset_drift"] is False  # the glob's two files, as one batch
    assert d1["performance"]["accuracy"] > 0.9 and d2["performance"] == {}  # day-2 came without labels
    client = MlflowClient(tracking_uri=monitored["uri"])
    run = client.get_run(d2["run_id"])
    tags = run.data.tags
    assert tags["mlops_wb.monitor.name"] == "cancer" and tags["mlops_wb.monitor.batch_id"] == "day-2"
    assert tags["mlops_wb.monitor.batch_time"] == "2024-06-02T00:00:00+00:00"
    assert tags["mlops_wb.monitor.model"] == "models:/cancer/1"  # the alias, resolved
    assert tags["mlops_wb.local_path"] == "true" and tags["mlops_wb.monitor.local_paths"] == "batch"
    assert tags["mlops_wb.monitor.batch"] == str(monitored["root"] / "batches" / "day-2")
    assert run.data.metrics["drift.dataset_drift"] == 1.0 and run.data.metrics["prediction_drift.dataset_drift"] == 1.0
    arts = {a.path for a in client.list_artifacts(d2["run_id"], "monitor")}
    assert arts == {"monitor/reference_profile.json", "monitor/prediction_drift_report.json",
                    "monitor/predictions.parquet"}
    assert {a.path for a in client.list_artifacts(d2["run_id"], "drift")} == {"drift/drift_report.json",
                                                                              "drift/drift_report.html"}


def test_a_drifted_batch_sends_one_signed_alert(monitored):
    (req,) = monitored["receiver"].on("/hook")
    assert req.signature_ok and req.headers["X-Mlops-Wb-Event"] == "drift"
    alert = req.json
    assert alert["subject"].startswith("cancer: batch day-2 drifted: ") and "the model's predictions drifted" in alert[
        "subject"]
    assert alert["details"]["run_id"] == monitored["runs"]["day-2"]["run_id"]
    assert alert["details"]["report"] == f"runs:/{monitored['runs']['day-2']['run_id']}/drift/drift_report.json"
    assert monitored["runs"]["day-2"]["alerts"][0]["delivered"] is True


def test_history_labels_and_skipping_the_same_batch(monitored):
    from mlops_wb.core import get_client, load_settings
    from mlops_wb.monitor import drift_history, performance_history

    root, env = monitored["root"], monitored["env"]
    r = mw("monitor", "history", "--json", cwd=root, env=env)
    rows = json.loads(r.stdout)
    assert [(x["batch_id"], x["source"], x["dataset_drift"]) for x in rows] == [
        ("day-1", "data", False), ("day-1", "prediction", False), ("day-2", "data", True),
        ("day-2", "prediction", True), ("day-3", "data", False), ("day-3", "prediction", False)]
    r = mw("monitor", "labels", "labels-day-2.csv", "--key", "id", cwd=root, env=env)
    assert "day-2" in r.stdout and "accuracy" in r.stdout
    settings = load_settings(root / "settings.ini")
    client = get_client(monitored["uri"])
    perf = performance_history(settings=settings, client=client)
    acc = perf[perf.metric == "accuracy"].set_index("batch_id")
    assert list(acc.index) == ["day-1", "day-2", "day-3"]
    assert acc.loc["day-2", "labelled_rows"] == 100 and acc.loc["day-2", "value"] < acc.loc["day-1", "value"]
    h = drift_history(settings=settings, client=client)
    assert len(h[h.source == "data"]) == 3 * 30 and set(h[h.source == "prediction"].column) == {
        "prediction", "prediction_score"}
    r = mw("monitor", "batches/day-1.csv", "--model", monitored["model"], cwd=root, env=env)
    assert "skipped: the same data was monitored under 'cancer' in run " + monitored["runs"]["day-1"]["run_id"] in r.stdout
    assert len(drift_history(settings=settings, client=client).run_id.unique()) == 3


def test_retraining_pipeline_starts_on_drift(monitored):
    from mlops_wb.pipelines import write_notebook

    root, env = monitored["root"], monitored["env"]
    write_notebook(root / "retrain.ipynb", 'batch = ""\nmonitor_run = ""',
                   "from mlops_wb.pipelines import record\nrecord('batch', batch)\nrecord('monitor_run', monitor_run)")
    (root / "retrain.yaml").write_text("name: retrain\nsteps:\n  retrain:\n    notebook: retrain.ipynb\n"
                                       "    parameters: {batch: '${monitor.batch}', monitor_run: '${monitor.run_id}'}\n")
    monitored["b2"].drop(columns="target").to_csv(root / "day-4.csv", index=False)
    r = mw("monitor", "day-4.csv", "--retrain", "retrain.yaml", "--json", "--no-alert", "--force", cwd=root, env=env)
    # (--force: day-4 holds the same rows as day-2, which the fingerprint recognises)
    out = json.loads(r.stdout)
    assert out["dataset_drift"] is True and out["retrain_run"]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=monitored["uri"])
    (step,) = client.search_runs([client.get_run(out["retrain_run"]).info.experiment_id],
                                 filter_string=f"tags.mlflow.parentRunId = '{out['retrain_run']}'")
    assert step.data.params["batch"] == str(root / "day-4.csv") and step.data.params["monitor_run"] == out["run_id"]
    assert client.get_run(out["run_id"]).data.tags["mlops_wb.monitor.retrain_run"] == out["retrain_run"]
    assert len(monitored["receiver"].requests) == 1  # --no-alert


def test_records_are_portable_through_a_shared_server(tmp_path, mlflow_server):
    "Monitor in one folder; read the history and the latest report from an empty one sharing only the server."
    train, b1, b2, _ = cancer_frames()
    a, b = tmp_path / "laptop", tmp_path / "colleague"
    a.mkdir()
    b.mkdir()
    train.to_parquet(a / "train.parquet")
    b1.to_csv(a / "day-1.csv", index=False)
    b2.to_parquet(a / "day-2.parquet")
    name = f"portable-{tmp_path.name}"
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    model = log_champion(mlflow_server, train, name)
    ref = mw("monitor", "reference", "train.parquet", "--model", model, "--target", "target", "--key", "id", cwd=a,
             env=env).stdout.strip()
    outs = []
    for day in ("day-1.csv", "day-2.parquet"):
        r = mw("monitor", day, "--reference", ref, "--model", model, "--name", name, "--target", "target", "--key",
               "id", "--json", cwd=a, env=env)
        out = json.loads(r.stdout)
        assert out["notes"][0].startswith(f"the batch is a path on this machine ({a / day}): it is recorded as "
                                          "such, and colleagues on other machines cannot open it")
        outs.append(out)
    shutil.rmtree(a)  # nothing of the laptop is left but what the server holds
    code = f"""
import json
from mlops_wb.monitor import drift_history, latest_drift_report, performance_history
h = drift_history({name!r})
rep = latest_drift_report({name!r})
pred = latest_drift_report({name!r}, predictions=True)
perf = performance_history({name!r})
from mlops_wb.widgets import monitor_dashboard
dash = monitor_dashboard({name!r})  # the workbench's view of the stream, from the store alone
print(json.dumps({{"batches": h.drop_duplicates("run_id").batch_id.tolist(), "sources": sorted(set(h.source)),
                  "drifted": rep.drifted_columns, "n_current": rep.n_current, "pred": pred.dataset_drift,
                  "accuracy": perf[perf.metric == "accuracy"].value.tolist(),
                  "view": dash.report.drifted_columns, "sections": [t for t, _ in dash._sections],
                  "traces": [len(c.figure.data) for _, c in dash._sections]}}))
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=b, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["batches"] == [outs[0]["batch_id"], outs[1]["batch_id"]]
    assert got["sources"] == ["data", "prediction"]
    assert got["drifted"] == outs[1]["drifted_columns"] and got["n_current"] == 100 and got["pred"] is True
    assert got["view"] == outs[1]["drifted_columns"]
    assert got["sections"] == [f"Drift history of {name}: 2 batches", "Performance history"], got["sections"]
    assert all(n > 0 for n in got["traces"]), got["traces"]
    assert got["accuracy"] == pytest.approx([outs[0]["performance"]["accuracy"], outs[1]["performance"]["accuracy"]])
    assert list(b.iterdir()) == []  # the colleague's folder stays empty: nothing was read or written there
    r = mw("monitor", "history", "--name", name, cwd=b, env=env)
    assert len(r.stdout.strip().splitlines()) == 1 + 4 and "day-2-" in r.stdout  # a header, 2 batches x 2 sources
