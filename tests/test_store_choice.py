"""Every write path lands in the store chosen each of the four documented ways, and never changes the process.

The ways, by precedence: the `uri`/`client` argument, `MLFLOW_TRACKING_URI`, `[tracking] uri` in settings.ini, the
embedded default (`<project>/.mlops_wb/mlflow.db`). For each, the lower-precedence ways point at other stores too,
so a write that drifts shows up there. Every write path runs twice in a row: training with a logged model, search,
log_dataset, a gate report, a drift report, registering a model, and a pipeline notebook through the runner. After
each call the environment (MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_ID and every other variable), MLflow's
process-wide tracking URI and its active run are what they were.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import clean_env

WAYS = ["argument", "MLFLOW_TRACKING_URI", "settings.ini", "embedded default"]


def store_at(template: Path, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, path)
    return f"sqlite:///{path}"


def runs_in(uri: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, max_results=50_000) if exps else []


@pytest.mark.parametrize("way", WAYS)
def test_every_write_lands_in_the_chosen_store(way, sqlite_template, tmp_path, monkeypatch):
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from mlops_wb.core import get_client
    from mlops_wb.data import log_dataset
    from mlops_wb.drift import compute_drift
    from mlops_wb.gates import GateCheck, GateReport
    from mlops_wb.pipelines import run_notebook, write_notebook
    from mlops_wb.registry import register
    from mlops_wb.training import search, train_model

    project = tmp_path / "project"
    project.mkdir()
    stores = {name: tmp_path / name / "mlflow.db" for name in ("argument", "env", "settings")}
    stores["embedded"] = project / ".mlops_wb" / "mlflow.db"
    chosen = {"argument": "argument", "MLFLOW_TRACKING_URI": "env", "settings.ini": "settings",
              "embedded default": "embedded"}[way]
    rank = ["argument", "env", "settings", "embedded"]
    for name in rank[rank.index(chosen):]:  # the chosen store and the lower-precedence ones exist
        store_at(sqlite_template, stores[name])
    uri = f"sqlite:///{stores[chosen]}"
    settings_uri = f"sqlite:///{stores['settings']}" if rank.index(chosen) <= rank.index("settings") else ""
    (project / "settings.ini").write_text(f"[tracking]\nuri = {settings_uri}\nexperiment = chosen\n\n"
                                          "[approval]\napprovers = someone\n")
    for k in ("MLFLOW_TRACKING_URI", "MLOPS_WB_SETTINGS", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(k, raising=False)
    if rank.index(chosen) <= rank.index("env"):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{stores['env']}")
    monkeypatch.chdir(project)
    kwargs = {"client": get_client(uri)} if way == "argument" else {}

    X, y = load_iris(return_X_y=True, as_frame=True)
    notebook = write_notebook(project / "step.ipynb", "n = 1", "from mlops_wb.pipelines import record",
                              "record('n_twice', n * 2)")
    env = dict(os.environ)
    tracking = mlflow.get_tracking_uri()

    def unchanged(what: str) -> None:
        assert dict(os.environ) == env, f"{what} changed the environment"
        assert mlflow.get_tracking_uri() == tracking, f"{what} changed MLflow's tracking URI"
        assert mlflow.active_run() is None, f"{what} left an active run"

    made = []
    for attempt in range(2):
        res = train_model(LogisticRegression(max_iter=300), X, y, experiment="chosen", seed=attempt, **kwargs)
        unchanged("train_model")
        assert res.tracking_uri == uri and res.model_uri.startswith("models:/m-")
        found = search(LogisticRegression(max_iter=300), {"C": [0.1, 1.0]}, X, y, cv=2, experiment="chosen",
                       refit=attempt == 0, progress=False, **kwargs)
        unchanged("search")
        log_dataset(X.head(20), name=f"extra-{attempt}", run_id=res.run_id, **kwargs)
        unchanged("log_dataset")
        GateReport([GateCheck("min.accuracy", "metric", True, 0.97, 0.9)], candidate=res.run_id).log_to_mlflow(
            res.run_id, **kwargs)
        unchanged("GateReport.log_to_mlflow")
        drift_run = compute_drift(reference=X.iloc[:75], current=X.iloc[75:]).log_to_mlflow(experiment="drift",
                                                                                            **kwargs)
        unchanged("DriftReport.log_to_mlflow")
        register(res.model_uri, "chosen-model", **kwargs)  # as the OS login: a local store takes no other name
        unchanged("register")
        piped = run_notebook(notebook, parameters={"n": attempt + 1}, experiment="pipelines", cwd=project,
                             **({"uri": uri} if way == "argument" else {}))
        unchanged("run_notebook")
        made += [res.run_id, found.parent_run_id, drift_run, piped.run_id]

    in_store = {r.info.run_id: r for r in runs_in(uri)}
    assert set(made) <= set(in_store), "a run went elsewhere"
    for name in rank:
        if name != chosen and stores[name].exists():
            assert runs_in(f"sqlite:///{stores[name]}") == [], f"runs landed in the {name} store"
    assert not (project / "mlruns").exists() and not (tmp_path / "mlruns").exists()
    client = get_client(uri)
    versions = client.search_model_versions("name = 'chosen-model'")
    assert len(versions) == 2 and {v.run_id for v in versions} <= set(in_store)
    models = client.search_logged_models([in_store[made[0]].info.experiment_id])
    assert {m.source_run_id for m in models} >= {made[0], made[4]}  # the logged models, under the run's experiment
    assert in_store[made[3]].data.params.get("n") in ("1", "2")


def test_the_environment_is_never_changed_by_a_later_call(tmp_path, sqlite_template):
    "The issue's repro: with MLFLOW_TRACKING_URI set, two train_model calls with models go to that store."
    import subprocess
    import sys

    db = tmp_path / "env" / "mlflow.db"
    uri = store_at(sqlite_template, db)
    code = ("import os; from sklearn.datasets import load_iris; from sklearn.tree import DecisionTreeClassifier;"
            "from mlops_wb.training import train_model;"
            "X, y = load_iris(return_X_y=True, as_frame=True);"
            "a = train_model(DecisionTreeClassifier(), X, y, experiment='e');"
            "b = train_model(DecisionTreeClassifier(), X, y, experiment='e');"
            "print(a.tracking_uri); print(b.tracking_uri); print(os.environ.get('MLFLOW_TRACKING_URI'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(MLFLOW_TRACKING_URI=uri),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == [uri, uri, uri]
    assert not (tmp_path / ".mlops_wb").exists()
    assert len(runs_in(uri)) == 2
    assert pd.Series([r.info.status for r in runs_in(uri)]).eq("FINISHED").all()
