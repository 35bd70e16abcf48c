"""The DeploymentApproval widget, driven through its handlers against a real SQLite store and checked with
MLflow's own client: approve with a comment and see the alias move, buttons disabled with reasons, errors shown."""
from __future__ import annotations

import warnings

import pytest

warnings.filterwarnings("ignore")


@pytest.fixture
def desk(tracking_uri, monkeypatch, played_users):
    "A model with a champion v1 and a pending v2 whose real gate report (against v1) passed."
    import mlflow
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from mlops_wb.core import get_client
    from mlops_wb.gates import evaluate_candidate
    from mlops_wb.registry import ApprovalPolicy, approve, promote, register, request_approval

    monkeypatch.delenv("MLOPS_WB_USER", raising=False)
    df = load_breast_cancer(as_frame=True).frame
    df["site"] = np.random.default_rng(0).choice(["north", "south"], len(df))
    train, test = train_test_split(df, test_size=0.4, random_state=0)
    feats = [c for c in df.columns if c not in ("target", "site")]
    client = get_client(tracking_uri)
    exp = client.create_experiment("train", artifact_location="file://" + tracking_uri[len("sqlite:///"):].rsplit(
        "/", 1)[0] + "/artifacts")
    mlflow.set_tracking_uri(tracking_uri)
    runs = []
    try:
        for cols in (feats[:2], feats):
            with mlflow.start_run(experiment_id=exp) as r:
                mlflow.sklearn.log_model(LogisticRegression(max_iter=3000).fit(train[cols], train["target"]),
                                         name="model", pip_requirements=["scikit-learn"],
                                         serialization_format="cloudpickle")
            runs.append(r.info.run_id)
    finally:
        mlflow.set_tracking_uri(None)
    pol = ApprovalPolicy(approvers=("alice", "bob"))
    for r in runs:
        v = register(r, "cancer", user="dana", client=client).version
        request_approval("cancer", v, user="dana", client=client)
    approve("cancer", 1, approver="alice", comment="baseline", override="first model", client=client, policy=pol)
    promote("cancer", 1, approver="alice", comment="baseline", client=client, policy=pol)
    evaluate_candidate(candidate=("cancer", 2), champion="models:/cancer@champion", data=test, target="target",
                       sensitive="site", reference=train, client=client).log_to_mlflow(runs[1], client=client)
    return client, pol


def _alias(client, alias):
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias("cancer", alias).version)
    except MlflowException:
        return None


def test_approve_with_comment_moves_the_alias(desk):
    from mlflow import MlflowClient

    from mlops_wb.core import client_uri
    from mlops_wb.widgets import DeploymentApproval

    client, pol = desk
    w = DeploymentApproval("cancer", user="alice", policy=pol, client=client)
    assert w.version == "2" and w.state.versions["2"].status == "pending"
    # what a reviewer sees: deltas against the champion, the gate report, drift and fairness evidence
    assert "roc_auc" in w._deltas.value and "champion" in w._gates.value
    assert "data.drift" in w._drift.value and "north" in w._fairness.value
    assert [t.name for t in w._chart.figure.data] == ["champion (models:/cancer@champion)", "v2"]
    assert [r["key"] for r in w._versions.rows] == ["2", "1"] and w._versions.selected == "2"
    # approve needs a comment: disabled, with the reason shown
    assert w._buttons["approve"].disabled and "Type a comment first" in w._reasons.value
    w._comment.value = "better on every metric; canary first"
    w._weight.value = 0.2
    assert not w._buttons["approve"].disabled
    w._buttons["approve"].click()
    assert w.status_text.startswith("Recorded #"), w.status_text
    mc = MlflowClient(tracking_uri=client_uri(client), registry_uri=client_uri(client))  # MLflow's own view
    assert str(mc.get_model_version_by_alias("cancer", "canary").version) == "2"
    assert mc.get_model_version("cancer", "2").tags["mlops_wb.canary_weight"] == "0.2"
    assert w._comment.value == ""  # cleared after a decision
    w._comment.value = "canary looked fine"
    w._buttons["promote"].click()
    assert str(mc.get_model_version_by_alias("cancer", "champion").version) == "2"
    assert _alias(mc, "canary") is None
    assert "champion: <b>v2</b>" in w._header.value
    # rollback from the widget
    w._comment.value = "latency regression"
    w._buttons["rollback"].click()
    assert _alias(mc, "champion") == "1"
    assert "intact" in w._history.banner["text"] and w._history.records[0]["action"] == "rollback"


def test_buttons_disabled_for_a_non_approver_and_errors_shown(desk):
    from mlops_wb.registry import ApprovalPolicy, promote
    from mlops_wb.widgets import DeploymentApproval

    client, pol = desk
    w = DeploymentApproval("cancer", user="zoe", policy=pol, client=client)
    w._comment.value = "I would like to"
    for a in ("approve", "reject", "canary", "promote", "rollback"):
        assert w._buttons[a].disabled, a
    assert "&#x27;zoe&#x27; may not approve cancer v2: only the listed approvers may (alice, bob)." in w._reasons.value
    # make the registrant an approver: the four-eyes rule still disables approval, with its reason
    w.policy = ApprovalPolicy(approvers=("alice", "bob", "dana"))
    w.user = "dana"
    assert w._buttons["approve"].disabled
    assert "four-eyes rule" in w._reasons.value
    # an approver may: the click approves v2 (recorded, tagged, in the audit trail); the champion stays v1
    from mlops_wb.registry import APPROVED_BY_TAG, STATUS_TAG, history

    w.user = "bob"
    assert not w._buttons["approve"].disabled
    w._buttons["approve"].click()
    assert w.error == "" and w.status_text.startswith("Recorded #"), w.status_text
    assert w.status_text.endswith("approve v2, pending → approved."), w.status_text
    tags = client.get_model_version("cancer", "2").tags
    assert (tags[STATUS_TAG], tags[APPROVED_BY_TAG]) == ("approved", "bob")
    last = history("cancer", client=client).iloc[-1]
    assert (last.action, last.actor, last.outcome, last.comment) == ("approve", "bob", "ok", "I would like to")
    assert w._history.records[0]["action"] == "approve" and w._history.records[0]["who"] == "bob"
    assert w.state.versions["2"].status == "approved" and _alias(client, "champion") == "1"
    # an error from the library shows in the status area, not as a lost traceback
    promote("cancer", 2, approver="alice", comment="meanwhile, elsewhere", client=client, policy=pol)
    w.version = "1"
    w._comment.value = "back to v1"
    w.state.snapshot.champion = "1"  # the page still shows the old champion
    w._buttons["rollback"].click()
    assert "The champion of cancer is v2, not v1: it changed since you looked." in w.error
    assert "&#9888;" in w._status_area.value
    assert w.state.snapshot.champion == "2"  # reloaded after the error


def test_reasons_read_right(desk):
    from mlops_wb.widgets import DeploymentApproval

    client, pol = desk
    w = DeploymentApproval("cancer", user="alice", policy=pol, client=client)
    w._comment.value = "a comment"
    request = [line for line in w._reasons.value.split("</div>") if "Request approval" in line][0]
    assert "v2 is already pending approval (requested by dana)" in request
    assert "Approve it first" not in request
    w.version = "1"  # the champion
    assert "v1 is already champion" in w._reasons.value
    assert all(b.layout.width == "auto" for b in w._buttons.values())  # labels are never cut off


def test_static_rendering(desk):
    import re

    from mlops_wb.widgets import DeploymentApproval
    from mlops_wb.widgets.view import VIEW_MIME

    client, pol = desk
    w = DeploymentApproval("cancer", user="alice", policy=pol, client=client)
    bundle = w._repr_mimebundle_()
    assert VIEW_MIME in bundle and bundle[VIEW_MIME]["model_id"] == w.model_id
    html = bundle["text/html"]
    for part in ("cancer", "v2 against the champion", "Gate report", "fairness.gap", "Audit history", "intact"):
        assert part in html, part
    charts = [p for p in bundle[VIEW_MIME]["snapshot"]["parts"] if "application/vnd.plotly.v1+json" in p]
    assert [t["name"] for t in charts[0]["application/vnd.plotly.v1+json"]["data"]] == [
        "champion (models:/cancer@champion)", "v2"]
    assert "<script" not in re.sub(r"<script>\(function\(\)\{var f=.*?</script>", "", html, flags=re.S)
