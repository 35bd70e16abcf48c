"""Tracked training and search checked with MLflow's own client, on SQLite and over HTTP (no mocks)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def iris():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


def pyfunc_model(client, model_uri: str):
    "MLflow's pyfunc of a logged model, fetched through `client`'s store (no process-wide tracking URI)."
    import tempfile

    import mlflow
    from mlflow.artifacts import download_artifacts

    location = client.get_logged_model(model_uri.removeprefix("models:/")).artifact_location
    return mlflow.pyfunc.load_model(download_artifacts(artifact_uri=location, dst_path=tempfile.mkdtemp(),
                                                       tracking_uri=client.tracking_uri))


def test_train_model_over_http_logs_everything_and_the_model_loads(mlflow_server, iris):
    "Against a real tracking server: params, metrics, fingerprints, seed, and a model loadable by its URI."
    import os

    import mlflow
    from mlflow import MlflowClient
    from sklearn.ensemble import RandomForestClassifier

    from mlops_wb.core import get_client
    from mlops_wb.data import fingerprint
    from mlops_wb.training import train_model

    X, y = iris
    env = dict(os.environ)
    res = train_model(RandomForestClassifier(n_estimators=15), X, y, experiment="train-http", run_name="rf-http",
                      eval_data=0.3, seed=5, client=get_client(mlflow_server))
    assert mlflow.active_run() is None and dict(os.environ) == env  # no global state left behind
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
    model = MlflowClient(mlflow_server).get_logged_model(res.model_uri.removeprefix("models:/"))
    assert model.experiment_id == res.experiment_id and model.source_run_id == res.run_id
    pyfunc = pyfunc_model(MlflowClient(mlflow_server), res.model_uri)
    assert (pyfunc.predict(X.head(7)) == res.estimator.predict(X.head(7))).all()
    assert pyfunc.metadata.get_input_schema().input_names() == list(X.columns)
    assert (res.load_model().predict(X) == res.estimator.predict(X)).all()
    assert fingerprint(X) == fingerprint(X.copy())  # what data.* params rest on


def _mixed(n: int = 240):
    "A frame with a numeric, a category and a text column, and a binary and a 3-class target."
    import pandas as pd

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=n), "z": rng.integers(0, 9, n),
                      "colour": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
                      "city": pd.array(rng.choice(["Oslo", "Lima", "Pune"], n), dtype="str")})
    y2 = pd.Series(((X.x > 0) ^ (X.colour == "red")).astype(int), name="label")
    y3 = pd.Series(np.where(X.x > 0.5, "high", np.where(X.x < -0.5, "low", "mid")), name="level")
    return X, y2, y3


def _kinds():
    from sklearn.cluster import KMeans
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import LinearSVC

    columns = make_column_transformer((StandardScaler(), ["x", "z"]), (OneHotEncoder(), ["colour", "city"]))
    return {
        "pipeline-columntransformer": (make_pipeline(columns, LogisticRegression()), "y2", "classification"),
        "regressor": (make_pipeline(columns, Ridge()), "num", "regression"),
        "multiclass": (make_pipeline(columns, RandomForestClassifier(n_estimators=20)), "y3", "classification"),
        "no-predict_proba": (make_pipeline(columns, LinearSVC()), "y2", "classification"),
        "histgradientboosting-categorical": (HistGradientBoostingClassifier(max_iter=30), "y2", "classification"),
        "clusterer": (make_pipeline(columns, KMeans(3, n_init=3)), None, "clustering"),
    }


@pytest.mark.parametrize("kind", list(_kinds()))
def test_each_kind_of_estimator_trains_logs_and_loads(tracking_uri, kind):
    "One estimator of each scikit-learn kind: pyfunc of the logged model predicts its own training frame as it did."
    from mlops_wb.core import get_client
    from mlops_wb.training import train_model

    est, target, task = _kinds()[kind]
    X, y2, y3 = _mixed()
    if kind == "histgradientboosting-categorical":
        X = X.drop(columns="city")  # HistGradientBoosting takes category columns, not text ones
    y = {"y2": y2, "y3": y3, "num": X.x * 3 + (X.colour == "red"), None: None}[target]
    features = X
    client = get_client(tracking_uri)
    res = train_model(est, features, y, experiment="kinds", seed=1, eval_data=0.25, client=client)
    assert res.task == task
    X_train = features  # the frame it was trained on (and evaluated on: eval_data holds out a quarter)
    expected = res.estimator.predict(X_train)
    pyfunc = pyfunc_model(client, res.model_uri)
    got = pyfunc.predict(X_train)
    assert np.asarray(got).tolist() == np.asarray(expected).tolist(), kind
    assert res.load_model().predict(X_train).tolist() == np.asarray(expected).tolist()
    if "colour" in features:  # what a REST call sends: the categories as plain strings
        plain = X_train.astype({"colour": "str"})
        assert np.asarray(pyfunc.predict(plain)).tolist() == np.asarray(expected).tolist()
    assert {f"eval_{m}" for m in {"classification": ["accuracy"], "regression": ["rmse"],
                                  "clustering": ["silhouette"]}[task]} <= set(res.metrics)


def test_what_cannot_work_is_refused_clearly(tracking_uri, iris):
    from sklearn.cluster import DBSCAN, KMeans
    from sklearn.ensemble import IsolationForest
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from mlops_wb.core import InvalidParameterError, MlopsWbError, get_client
    from mlops_wb.training import train_model

    X, y = iris
    client = get_client(tracking_uri)
    cases = [
        (lambda: train_model(LogisticRegression(), X, None, client=client), "'y' parameter of train_model"),
        (lambda: train_model(DBSCAN(), X, client=client), "DBSCAN has no predict()"),
        (lambda: train_model(DBSCAN(), X, eval_data=0.2, log_model=False, client=client), "DBSCAN has no predict()"),
        (lambda: train_model(IsolationForest(), X, client=client), "is an outlier detector"),
        (lambda: train_model(StandardScaler(), X, client=client), "Pass task='classification'"),
        (lambda: train_model(KMeans(3), "not data", client=client), "'X' parameter of train_model"),
    ]
    before = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
    for call, message in cases:
        with pytest.raises(MlopsWbError, match=message) as e:
            call()
        assert "\n" not in str(e.value) and isinstance(e.value, InvalidParameterError | MlopsWbError)
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) == before  # no runs left
    db = train_model(DBSCAN(eps=0.6), X, log_model=False, experiment="dbscan", client=client)
    assert db.task == "clustering" and db.metrics["train_n_clusters"] >= 2 and db.model_uri is None
    km = train_model(KMeans(3, n_init=3), X, y, experiment="kmeans", seed=0, log_model=False, client=client)
    assert km.metrics["train_adjusted_rand"] > 0.5  # y given to a clusterer: scored against it


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


@st.composite
def training_data(draw):
    "A small random frame (numbers, NaN-free or not, a category column, constant columns) and a target of any kind."
    import pandas as pd

    n = draw(st.integers(2, 40))
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    cols = {f"x{i}": rng.normal(size=n) * draw(st.sampled_from([1, 0, 1e6])) for i in range(draw(st.integers(1, 3)))}
    if draw(st.booleans()):
        cols["c"] = pd.Categorical(rng.choice(["a", "b"], n))
    X = pd.DataFrame(cols)
    if draw(st.booleans()):
        X.iloc[0, 0] = np.nan
    kind = draw(st.sampled_from(["binary", "multiclass", "continuous", "one-class", "none"]))
    y = {"binary": lambda: rng.integers(0, 2, n), "multiclass": lambda: rng.choice(["p", "q", "r"], n),
         "continuous": lambda: rng.normal(size=n), "one-class": lambda: np.zeros(n, dtype=int),
         "none": lambda: None}[kind]()
    return X, y


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=training_data(), which=st.sampled_from(["tree", "logreg", "ridge", "kmeans", "hgb"]))
def test_random_training_data_gives_sklearns_result_or_a_clear_error(tracking_uri, data, which):
    "Whatever the data: the metrics scikit-learn gives for the same fit, or an MlopsWbError (never anything else)."
    from sklearn.base import clone
    from sklearn.cluster import KMeans
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.tree import DecisionTreeClassifier

    from mlops_wb.core import MlopsWbError, get_client
    from mlops_wb.training import evaluate, train_model

    X, y = data
    est = {"tree": DecisionTreeClassifier(), "logreg": LogisticRegression(), "ridge": Ridge(),
           "kmeans": KMeans(2, n_init=2), "hgb": HistGradientBoostingClassifier(max_iter=5)}[which]
    try:
        res = train_model(est, X, y, seed=3, log_model=False, log_datasets=False, experiment="random",
                          client=get_client(tracking_uri))
    except MlopsWbError:
        return
    reference = clone(est).set_params(**{k: 3 for k in est.get_params() if k == "random_state"})
    reference.fit(X) if y is None else reference.fit(X, y)
    expected = evaluate(reference, X, y, task=res.task)
    assert {k.removeprefix("train_"): v for k, v in res.metrics.items() if k != "fit_seconds"} == pytest.approx(
        expected, nan_ok=True)
