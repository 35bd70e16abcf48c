"""Registry events reach people: a version waiting for approval, a promotion and a rollback each send one signed
webhook alert to a real HTTP receiver, and an alert that cannot be delivered never undoes or fails the transition."""
from __future__ import annotations

import warnings

from alert_receivers import RECEIVER_SECRET

from conftest import log_gates

warnings.filterwarnings("ignore")


def candidate(client, exp_id: str) -> str:
    "A run with a logged model and a gate report that passed; its run id."
    run_id = client.create_run(exp_id).info.run_id
    client.create_logged_model(exp_id, name="model", source_run_id=run_id)
    log_gates(client.tracking_uri, run_id, True)
    return run_id


def project(tmp_path, uri, monkeypatch, hook: str):
    for var in ("MLOPS_WB_USER", "MLOPS_WB_SETTINGS", "MLFLOW_TRACKING_URI", "MLOPS_WB_AUDIT_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLOPS_WB_WEBHOOK_SECRET", RECEIVER_SECRET)
    (tmp_path / "settings.ini").write_text(
        f"[tracking]\nuri = {uri}\n[registry]\nmodel_name = m\n"
        "[approval]\napprovers = bob\nfour_eyes = true\nallow_declared_user = true\n"
        f"[alerts]\nchannels = webhook\nwebhook_urls = {hook}\nretries = 0\ntimeout = 5\n")
    monkeypatch.chdir(tmp_path)
    from mlops_wb.core import get_client, load_settings

    client = get_client(uri)
    return client, load_settings(tmp_path / "settings.ini"), client.create_experiment(
        "runs", artifact_location=f"file://{tmp_path}/artifacts")


def test_pending_promotion_and_rollback_each_send_one_signed_alert(tmp_path, tracking_uri, http_receiver, monkeypatch):
    from mlops_wb.registry import approve, promote, register, request_approval, rollback

    client, s, exp = project(tmp_path, tracking_uri, monkeypatch, http_receiver.url("/hook"))
    kw = dict(client=client, settings=s)
    for run in (candidate(client, exp), candidate(client, exp)):
        v = register(run, "m", user="alice", **kw).version
        request_approval("m", v, user="alice", comment="ready", **kw)
        approve("m", v, approver="bob", comment="reviewed", **kw)
        promote("m", v, approver="bob", comment="ship it", **kw)
    rollback("m", approver="bob", comment="v2 misbehaves", **kw)

    reqs = http_receiver.on("/hook")
    assert all(r.signature_ok for r in reqs)
    got = [(r.json["event"], r.json["subject"]) for r in reqs]
    assert got == [("pending_approval", "m v1 waits for approval (requested by alice)"),
                   ("promotion", "m: v1 is the new champion (by bob)"),
                   ("pending_approval", "m v2 waits for approval (requested by alice)"),
                   ("promotion", "m: v2 is the new champion (by bob)"),
                   ("rollback", "m: champion rolled back from v2 to v1 by bob")]
    last = reqs[-1].json["details"]
    assert (last["model"], last["action"], last["champion_before"], last["champion_after"]) == ("m", "rollback", "2", "1")


def test_an_undeliverable_alert_never_fails_the_transition(tmp_path, tracking_uri, http_receiver, monkeypatch):
    from mlops_wb.alerts import alert_records
    from mlops_wb.registry import model_state, register, request_approval

    http_receiver.fail["/hook"] = 10  # answers 503 to every attempt
    client, s, exp = project(tmp_path, tracking_uri, monkeypatch, http_receiver.url("/hook"))
    v = register(candidate(client, exp), "m", user="alice", client=client, settings=s).version
    rec = request_approval("m", v, user="alice", comment="ready", client=client, settings=s)
    assert rec.outcome == "ok" and model_state("m", client=client).version(v).status == "pending"
    (undelivered,) = alert_records(settings=s, client=client).to_dict("records")
    assert undelivered["event"] == "pending_approval"
