"""Tracked training and search checked with MLflow's own client, on SQLite and over HTTP (no mocks)."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def iris():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


def test_train_model_over_http_logs_everything_and_the_model_loads(mlflow_server, iris):
    "Against a real tracking server: params, metrics, fingerprints, seed, and a model loadable by its URI."
    import mlflow
    from mlflow import MlflowClient
    from sklearn.ensemble import RandomForestClassifier

    from mlops_wb.core import get_client
    from mlops_wb.data import fingerprint
    from mlops_wb.training import train_model

    X, y = iris
    before = mlflow.get_tracking_uri()
    res = train_model(RandomForestClassifier(n_estimators=15), X, y, experiment="train-http", run_name="rf-http",
                      eval_data=0.3, seed=5, client=get_client(mlflow_server))
    assert mlflow.active_run() is None and mlflow.get_tracking_uri() == before  # no global state left behind
    run = MlflowClient(mlflow_server).get_run(res.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "rf-http"
    p = run.data.params
    assert (p["seed"], p["random_state"], p["n_estimators"], p["task"]) == ("5", "5", "15", "classification")
    assert p["train_rows"] == "105" and p["eval_rows"] == "45"
    assert len(p["data.X_train"]) == 32 and p["data.X_train"] != p["data.X_eval"]
    # multiclass: weighted precision/recall/f1 and one-vs-rest ROC AUC
    m = run.data.metrics
    assert {"train_accuracy", "eval_accuracy", "eval_precision", "eval_recall", "eval_f1", "eval_roc_auc",
            "eval_log_loss", "fit_seconds"} <= set(m)
    assert m["eval_accuracy"] > 0.85
    assert res.metrics == pytest.approx({k: v for k, v in m.items()})
    mlflow.set_tracking_uri(mlflow_server)
    try:
        model = mlflow.sklearn.load_model(res.model_uri)
        pyfunc = mlflow.pyfunc.load_model(res.model_uri)
    finally:
        mlflow.set_tracking_uri(before)
    assert (model.predict(X) == res.estimator.predict(X)).all()
    assert (pyfunc.predict(X.head(7)) == res.estimator.predict(X.head(7))).all()
    assert pyfunc.metadata.get_input_schema().input_names() == list(X.columns)
    assert (res.load_model().predict(X) == model.predict(X)).all()
    assert fingerprint(X) == fingerprint(X.copy())  # what data.* params rest on


def test_same_seed_same_run(tracking_uri, iris):
    from sklearn.ensemble import RandomForestClassifier

    from mlops_wb.core import get_client
    from mlops_wb.training import train_model

    X, y = iris
    client = get_client(tracking_uri)
    runs = [train_model(RandomForestClassifier(n_estimators=10), X, y, eval_data=0.25, seed=11, log_model=False,
                        experiment="repeat", client=client) for _ in range(2)]
    timeless = [{k: v for k, v in r.metrics.items() if k != "fit_seconds"} for r in runs]
    assert timeless[0] == timeless[1]
    assert runs[0].params == runs[1].params
    unseeded = train_model(RandomForestClassifier(n_estimators=10), X, y, log_model=False, experiment="repeat",
                           client=client)
    assert isinstance(unseeded.seed, int)
    assert client.get_run(unseeded.run_id).data.params["seed"] == str(unseeded.seed)  # drawn, and recorded


def test_task_is_inferred_and_overridable(tracking_uri):
    from sklearn.datasets import load_diabetes
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlops_wb.core import InvalidParameterError, get_client
    from mlops_wb.training import train_model

    X, y = load_diabetes(return_X_y=True)  # numpy arrays work too
    client = get_client(tracking_uri)
    res = train_model(make_pipeline(StandardScaler(), KNeighborsRegressor()), X, y, eval_data=(X[:50], y[:50]),
                      log_model=False, experiment="tasks", client=client)
    assert res.task == "regression" and {"train_rmse", "eval_mae", "eval_r2"} <= set(res.metrics)
    assert client.get_run(res.run_id).data.params["kneighborsregressor__n_neighbors"] == "5"
    with pytest.raises(InvalidParameterError, match="one of 'classification', 'regression'"):
        train_model(KNeighborsRegressor(), X, y, task="ranking", client=client)


def test_search_runs_nested_trials_and_the_parent_records_the_best(tracking_uri, iris):
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlops_wb.core import get_client
    from mlops_wb.tracking import compare_runs, load_runs
    from mlops_wb.training import search

    X, y = iris
    space = {"logisticregression__C": [0.01, 0.1, 1.0, 10.0], "logisticregression__fit_intercept": [True, False]}
    res = search(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), space, X, y, n_trials=5, cv=3,
                 metric="f1", experiment="searching", progress=False, client=get_client(tracking_uri))
    mc = MlflowClient(tracking_uri)
    kids = mc.search_runs([res.experiment_id], f"tags.`mlflow.parentRunId` = '{res.parent_run_id}'")
    trials = [k for k in kids if k.data.tags.get("mlops_wb.search") == "trial"]
    assert len(trials) == 5 and len(kids) == 6  # five trials and the refit of the best
    combos = {(t.data.params["logisticregression__C"], t.data.params["logisticregression__fit_intercept"])
              for t in trials}
    assert len(combos) == 5  # sampled without repeats from the 8-point grid
    scores = {t.info.run_id: t.data.metrics["cv_f1"] for t in trials}
    assert res.best_run_id == max(scores, key=scores.get)
    parent = mc.get_run(res.parent_run_id)
    assert parent.data.tags["mlops_wb.best_run_id"] == res.best_run_id
    assert parent.data.metrics["cv_f1"] == pytest.approx(max(scores.values()))
    assert parent.data.params["best.logisticregression__C"] == str(res.best_params["logisticregression__C"])
    history = [m.value for m in sorted(mc.get_metric_history(res.parent_run_id, "best_cv_f1"), key=lambda m: m.step)]
    assert len(history) == 5 and history == sorted(history)  # the best so far never gets worse
    assert mc.get_run(res.best_run_id).data.tags["mlops_wb.best"] == "true"
    assert res.best.model_uri and parent.data.tags["mlops_wb.best_model_uri"] == res.best.model_uri
    # the trials read back through the tracking module: only the searched params differ
    runs = load_runs("searching", query="`tags.mlops_wb.search` == 'trial'", client=get_client(tracking_uri))
    cmp = compare_runs(runs, histories=False)
    assert set(cmp.params.columns) - {"run_name"} <= {"logisticregression__C", "logisticregression__fit_intercept"}
    assert np.isclose(cmp.metrics.cv_f1.max(), max(scores.values()))
    assert cmp.is_best.loc[res.best_run_id, "cv_f1"]
