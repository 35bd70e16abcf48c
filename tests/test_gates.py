"""Quality gates on real models: every check detects its problem, thresholds come from settings and arguments win,
and a report logged to a registered version's run decides whether `approve` needs an override."""
from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pandas as pd
import pytest

warnings.filterwarnings("ignore")


@pytest.fixture(scope="module")
def cancer():
    "The breast-cancer data with a made-up `site` column, split into train (reference) and test."
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    df = load_breast_cancer(as_frame=True).frame
    df["site"] = np.random.default_rng(0).choice(["north", "south", "east"], len(df))
    train, test = train_test_split(df, test_size=0.4, random_state=0, stratify=df["target"])
    feats = [c for c in df.columns if c not in ("target", "site")]
    return train, test, feats


@pytest.fixture(scope="module")
def models(cancer):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, _, feats = cancer
    strong = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(train[feats], train["target"])
    weak = LogisticRegression(max_iter=1000).fit(train[["mean radius", "mean texture"]], train["target"])
    return strong, weak


def test_demo_candidate_passes_every_check(cancer, models):
    from mlops_wb.gates import evaluate_candidate

    train, test, _ = cancer
    strong, weak = models
    rep = evaluate_candidate(candidate=strong, champion=weak, data=test, target="target", sensitive="site",
                             reference=train, min_metrics={"roc_auc": 0.9, "f1": 0.9}, min_improvement=0.01)
    frame = rep.to_frame()
    assert frame["check"].tolist() == ["min.roc_auc", "min.f1", "improvement.roc_auc", "slice.worst", "fairness.gap",
                                       "robustness", "data.schema", "data.quality", "data.drift"]
    assert rep.passed and (frame["status"] == "pass").all(), frame
    assert rep.metrics["roc_auc"] > 0.99 and rep.champion_metrics["roc_auc"] < rep.metrics["roc_auc"]
    imp = rep["improvement.roc_auc"]
    assert imp.value == pytest.approx(rep.metrics["roc_auc"] - rep.champion_metrics["roc_auc"])
    fair = rep["fairness.gap"].evidence
    assert sorted(fair["groups"]) == ["east", "north", "south"] and sum(fair["counts"].values()) == len(test)
    assert {"demographic_parity_difference", "equalized_odds_difference"} <= set(fair)
    assert rep["slice.worst"].evidence["slices"][0]["column"] == "site"  # the only categorical column
    assert rep["data.drift"].evidence["drifted"] == []


def test_each_check_catches_its_problem(cancer, models):
    from sklearn.tree import DecisionTreeClassifier

    from mlops_wb.gates import evaluate_candidate

    train, test, feats = cancer
    strong, weak = models
    # relative improvement: the weak model against the strong champion
    rep = evaluate_candidate(candidate=weak, champion=strong, data=test, target="target", improvement_mode="relative")
    c = rep["improvement.roc_auc"]
    assert c.passed is False and c.value == pytest.approx(
        (rep.metrics["roc_auc"] - rep.champion_metrics["roc_auc"]) / rep.champion_metrics["roc_auc"])
    # a model that is wrong for one site: unfair, and its worst slice is far below the overall
    biased = test.copy()
    biased.loc[biased["site"] == "east", "target"] = 1 - biased.loc[biased["site"] == "east", "target"]
    rep = evaluate_candidate(candidate=strong, data=biased, target="target", sensitive="site", fairness_metric="accuracy")
    assert rep.failed == ["slice.worst", "fairness.gap"]
    assert rep["fairness.gap"].value > 0.8 and "lowest group 'east'" in rep["fairness.gap"].detail
    # a deep tree on raw features is brittle under noise
    tree = DecisionTreeClassifier(random_state=0).fit(train[feats], train["target"])
    rep = evaluate_candidate(candidate=tree, data=test, target="target", robustness_noise=0.5, min_robustness=0.99)
    assert rep["robustness"].passed is False and rep["robustness"].value < 0.99
    # shifted data drifts, and out-of-range values hurt quality
    shifted = test.copy()
    cols = feats[:20]
    shifted[cols] = shifted[cols] * 1.6
    rep = evaluate_candidate(candidate=strong, data=shifted, target="target", reference=train)
    assert rep["data.drift"].passed is False and rep["data.drift"].value >= 0.5
    assert rep["data.quality"].passed is False and "range" in rep["data.quality"].detail
    # a changed column type is a schema error
    from mlops_wb.gates.evaluate import check_data
    from mlops_wb.core import load_settings

    checks = check_data(test.astype({"mean area": str}), train, target="target", features=feats,
                        settings=load_settings())
    assert [c.status for c in checks] == ["fail", "pass", "pass"]
    assert checks[2].evidence["not_compared"] == ["mean area"]


def test_thresholds_come_from_settings_and_arguments_win(cancer, models):
    from mlops_wb.core import load_settings
    from mlops_wb.gates import evaluate_candidate

    _, test, _ = cancer
    strong, _ = models
    strict = load_settings(overrides={"gates.max_fairness_gap": 0.0001, "gates.min_metrics": "roc_auc:0.999, f1:0.5",
                                      "gates.primary_metric": "accuracy"})
    rep = evaluate_candidate(candidate=strong, data=test, target="target", sensitive="site", settings=strict)
    assert rep.primary_metric == "accuracy" and rep.thresholds["max_fairness_gap"] == 0.0001
    assert rep.failed == ["min.roc_auc", "fairness.gap"]
    rep = evaluate_candidate(candidate=strong, data=test, target="target", sensitive="site", settings=strict,
                             max_fairness_gap=0.5, min_metrics={"f1": 0.5})
    assert rep.passed and rep.thresholds["max_fairness_gap"] == 0.5


def test_errors_say_what_to_fix(cancer, models):
    from mlops_wb.core import InvalidParameterError
    from mlops_wb.gates import evaluate_candidate

    _, test, _ = cancer
    strong, _ = models
    cases = [
        (dict(target="label"), "The 'target' parameter of evaluate_candidate must be a column of data"),
        (dict(target="target", sensitive="gender"), "The 'sensitive' parameter of evaluate_candidate must be a column"),
        (dict(target="target", min_metrics={"auc": 0.5}), "must be metrics among ['accuracy', 'f1', 'log_loss'"),
        (dict(target="target", improvement_mode="percent"), "'improvement_mode' parameter of evaluate_candidate"),
        (dict(target="target", data=test.drop(columns="mean area")), "a frame with every feature the model expects"),
    ]
    for kw, msg in cases:
        kw = {"data": test} | kw
        with pytest.raises(InvalidParameterError, match=None) as e:
            evaluate_candidate(candidate=strong, **kw)
        assert msg in str(e.value), str(e.value)
    with pytest.raises(InvalidParameterError, match="must be a model URI"):
        evaluate_candidate(candidate=42, data=test, target="target")


def test_report_on_registered_versions_decides_approval(tracking_uri, cancer, models, monkeypatch, played_users):
    "Evaluate registered versions by URI, log the report to the candidate's run, and approve reads it."
    import mlflow

    from mlops_wb.core import ApprovalError, get_client
    from mlops_wb.gates import GATES_ARTIFACT, evaluate_candidate, gate_summary, read_gate_report
    from mlops_wb.registry import ApprovalPolicy, approve, promote, register, request_approval

    monkeypatch.delenv("MLOPS_WB_USER", raising=False)
    train, test, feats = cancer
    strong, weak = models
    client = get_client(tracking_uri)
    exp = client.create_experiment("train", artifact_location="file://" + tracking_uri[len("sqlite:///"):].rsplit(
        "/", 1)[0] + "/artifacts")
    mlflow.set_tracking_uri(tracking_uri)
    runs = {}
    try:
        for name, est, cols in (("weak", weak, ["mean radius", "mean texture"]), ("strong", strong, feats)):
            with mlflow.start_run(experiment_id=exp) as r:
                mlflow.sklearn.log_model(est, name="model", pip_requirements=["scikit-learn"],
                                         serialization_format="cloudpickle", input_example=train[cols].head(2))
            runs[name] = r.info.run_id
    finally:
        mlflow.set_tracking_uri(None)
    pol = ApprovalPolicy(approvers=("alice",))
    for name in ("weak", "strong"):
        v = register(runs[name], "cancer", user="dana", client=client).version
        request_approval("cancer", v, user="dana", client=client)
    approve("cancer", 1, approver="alice", comment="baseline", override="first model, no gates", client=client,
            policy=pol)
    promote("cancer", 1, approver="alice", comment="baseline", client=client, policy=pol)

    rep = evaluate_candidate(candidate=("cancer", 2), champion="models:/cancer@champion", data=test, target="target",
                             sensitive="site", reference=train, min_improvement=0.01, client=client)
    assert rep.candidate == "models:/cancer/2" and rep.champion == "models:/cancer@champion"
    assert rep.passed, rep.to_frame()
    uri = rep.log_to_mlflow(runs["strong"], client=client)
    assert uri == f"runs:/{runs['strong']}/{GATES_ARTIFACT}"
    run = client.get_run(runs["strong"])
    assert run.data.metrics["gates.passed"] == 1.0 and run.data.tags["mlops_wb.gates.passed"] == "true"
    assert run.data.metrics["gates.fairness.gap"] == pytest.approx(rep["fairness.gap"].value)
    assert read_gate_report(runs["strong"], client=client).to_dict() == rep.to_dict()
    rec = approve("cancer", 2, approver="alice", comment="passes every gate", client=client, policy=pol)
    ev = json.loads(rec.evidence)
    assert ev["gates"] == "passed" and ev["report"] == uri
    assert ev["sha256"] == hashlib.sha256(rep.to_json().encode()).hexdigest() == gate_summary(
        runs["strong"], client=client)["sha256"]

    # a stricter evaluation fails; a version with that report cannot be approved without an override
    v3 = register(runs["strong"], "cancer", user="dana", client=client).version
    request_approval("cancer", v3, user="dana", client=client)
    evaluate_candidate(candidate=("cancer", v3), data=test, target="target", sensitive="site",
                       max_fairness_gap=0.0, client=client).log_to_mlflow(runs["strong"], client=client)
    with pytest.raises(ApprovalError, match=r"cancer v3 failed its quality gates \(fairness.gap\)"):
        approve("cancer", v3, approver="alice", comment="looks fine", client=client, policy=pol)


def test_report_renders_escaped():
    from mlops_wb.gates import GateCheck, GateReport

    rep = GateReport([GateCheck("fairness.gap", "fairness", False, 0.3, 0.1, "<=", "<script>x</script>")],
                     candidate="<b>m</b>")
    html = rep._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;m&lt;/b&gt;" in html
    assert isinstance(rep.to_frame(), pd.DataFrame) and rep.summary() == "1 of 1 gates failed: fairness.gap."
