"""Alerts against real receivers: an HTTP server that verifies the webhook's HMAC itself, a Slack-format endpoint,
and real SMTP servers (plain, STARTTLS with a login, implicit TLS); retries with backoff, alerts that cannot be
delivered recorded in MLflow (or on disk when the store is down too), listed and re-sent by the console script."""
from __future__ import annotations

import json
import logging
import subprocess
import time

import pytest
from alert_receivers import RECEIVER_SECRET, self_signed_cert

from conftest import BIN, clean_env, free_port

MLOPS_WB = str(BIN / "mlops-wb")
SMTP_PASSWORD = "smtp-pa55word-xyz"


def project(tmp_path, uri, alerts: str):
    (tmp_path / "settings.ini").write_text(f"[tracking]\nuri = {uri}\n[alerts]\n{alerts}\n")
    from mlops_wb.core import load_settings

    return load_settings(tmp_path / "settings.ini")


def cli(*args, cwd, **env):
    return subprocess.run([MLOPS_WB, *args], cwd=cwd, env=clean_env(**env), capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv("MLOPS_WB_WEBHOOK_SECRET", RECEIVER_SECRET)
    return RECEIVER_SECRET


def test_webhook_is_signed_and_verified_by_the_receiver(tmp_path, tracking_uri, http_receiver, secret):
    from mlops_wb.alerts import notify

    s = project(tmp_path, tracking_uri, f"channels = webhook\nwebhook_urls = {http_receiver.url('/hook')}")
    (d,) = notify("drift", subject="cancer: batch day-7 drifted", settings=s,
                  details={"name": "cancer", "share_drifted": 0.6, "drifted_columns": ["mean radius", "worst area"]})
    assert (d.delivered, d.attempts, d.status, d.channel) == (True, 1, "200", "webhook")
    (req,) = http_receiver.on("/hook")
    assert req.signature_ok is True  # checked by the receiver with hmac, not by mlops_wb
    h = req.headers
    assert h["X-Mlops-Wb-Event"] == "drift" and h["X-Mlops-Wb-Alert-Id"] == d.alert_id
    assert abs(int(h["X-Mlops-Wb-Timestamp"]) - time.time()) < 30
    assert h["X-Mlops-Wb-Signature"].startswith("sha256=") and len(h["X-Mlops-Wb-Signature"]) == 7 + 64
    assert h["Content-Type"].startswith("application/json")
    body = req.json
    assert (body["format"], body["event"], body["severity"], body["title"]) == ("mlops_wb.alert", "drift", "warning",
                                                                                "Data drift")
    assert body["details"]["drifted_columns"] == ["mean radius", "worst area"]
    assert body["source"]["project"] == tmp_path.name and body["source"]["tracking_uri"] == tracking_uri
    assert secret not in req.body.decode()


def test_replayed_or_tampered_requests_fail_verification(tmp_path, tracking_uri, http_receiver, secret):
    from mlops_wb.alerts import make_alert, verify_signature, webhook_request

    body, headers = webhook_request(make_alert("test", subject="x"), secret=secret, timestamp=int(time.time()) - 3600)
    args = dict(signature=headers["X-Mlops-Wb-Signature"], timestamp=headers["X-Mlops-Wb-Timestamp"], secret=secret)
    assert verify_signature(body, **args, now=int(headers["X-Mlops-Wb-Timestamp"]) + 10)
    assert not verify_signature(body, **args)  # an hour old: a replay
    assert not verify_signature(body.replace(b'"x"', b'"y"'), **args, now=int(headers["X-Mlops-Wb-Timestamp"]))


def test_retries_with_backoff_against_a_receiver_that_fails_twice(tmp_path, tracking_uri, http_receiver, secret):
    from mlops_wb.alerts import notify

    http_receiver.fail["/hook"] = 2
    s = project(tmp_path, tracking_uri, f"channels = webhook\nwebhook_urls = {http_receiver.url('/hook')}\n"
                                        "retries = 3\nbackoff = 0.2")
    t0 = time.perf_counter()
    (d,) = notify("gate_failed", subject="v4 failed 1 quality gate", details={"failed": ["fairness.gap"]}, settings=s)
    took = time.perf_counter() - t0
    assert (d.delivered, d.attempts) == (True, 3)
    assert took >= 0.2 + 0.4  # waited backoff, then twice as long
    reqs = http_receiver.on("/hook")
    assert [r.status for r in reqs] == [503, 503, 200]
    assert len({r.headers["X-Mlops-Wb-Alert-Id"] for r in reqs}) == 1  # the same alert: receivers can deduplicate
    assert all(r.signature_ok for r in reqs)  # each attempt freshly signed


def test_a_4xx_answer_is_not_retried(tmp_path, tracking_uri, http_receiver, monkeypatch):
    from mlflow import MlflowClient

    from mlops_wb.alerts import notify

    monkeypatch.setenv("MLOPS_WB_WEBHOOK_SECRET", "not-the-receivers-secret")
    s = project(tmp_path, tracking_uri, f"channels = webhook\nwebhook_urls = {http_receiver.url('/hook')}\n"
                                        "retries = 3\nbackoff = 5")
    (d,) = notify("rollback", subject="cancer: champion rolled back to v2", settings=s)
    assert (d.delivered, d.attempts, d.status) == (False, 1, "401")  # retrying cannot fix a refused signature
    assert d.seconds < 5  # so no backoff was waited
    assert d.error.startswith("HTTP 401 Unauthorized")
    run = MlflowClient(tracking_uri=tracking_uri).get_run(d.recorded)
    assert run.data.tags["mlops_wb.alert.status"] == "undelivered"


def test_slack_message_format(tmp_path, tracking_uri, http_receiver, monkeypatch):
    from mlops_wb.alerts import notify

    monkeypatch.setenv("MLOPS_WB_SLACK_WEBHOOK_URL", http_receiver.url("/services/T000/B000/XXXX"))
    s = project(tmp_path, tracking_uri, "channels = slack")
    (d,) = notify("promotion", subject="cancer v3 is the champion", settings=s,
                  details={"model": "cancer", "version": "3", "previous": "2", "comment": "beats v2 <by> 0.01 & more"})
    assert d.delivered and d.target == f"http://127.0.0.1:{http_receiver.port}/services/***"
    (req,) = http_receiver.on("/services/T000/B000/XXXX")
    msg = req.json
    assert msg["text"] == "[info] New champion: cancer v3 is the champion"
    assert [b["type"] for b in msg["blocks"]] == ["header", "section", "section", "context"]
    assert msg["blocks"][0]["text"] == {"type": "plain_text", "text": "cancer v3 is the champion", "emoji": True}
    fields = [f["text"] for f in msg["blocks"][2]["fields"]]
    assert fields[0] == "*model*\ncancer" and fields[3] == "*comment*\nbeats v2 &lt;by&gt; 0.01 &amp; more"
    assert "X-Mlops-Wb-Signature" not in req.headers


def test_email_over_plain_smtp_and_pending_approval_goes_to_the_approvers(tmp_path, tracking_uri, smtp_receiver):
    from mlops_wb.alerts import notify

    server = smtp_receiver()
    s = project(tmp_path, tracking_uri, f"channels = email\nsmtp_host = 127.0.0.1\nsmtp_port = {server.port}\n"
                                        "smtp_security = none\nemail_from = mlops@example.com\n"
                                        "email_to = team@example.com\napprover_emails = lead@example.com, qa@example.com")
    (d,) = notify("pending_approval", subject="cancer v4 waits for approval", settings=s,
                  details={"model": "cancer", "version": "4", "requested_by": "data-scientist", "gates": "passed"})
    assert d.delivered and d.target == f"127.0.0.1:{server.port} to lead@example.com, qa@example.com"
    notify("drift", subject="cancer: batch 9 drifted", settings=s, details={"share_drifted": 0.7})
    first, second = server.messages
    assert first["to"] == ["lead@example.com", "qa@example.com"] and second["to"] == ["team@example.com"]
    m = first["message"]
    assert m["Subject"] == "[mlops-wb] Approval requested: cancer v4 waits for approval"
    assert (m["From"], m["X-Mlops-Wb-Event"]) == ("mlops@example.com", "pending_approval")
    text = m.get_body(("plain",)).get_content()
    assert "cancer v4 waits for approval" in text and "requested_by: data-scientist" in text
    assert "<th style='text-align:left;padding:2px 8px'>version</th>" in m.get_body(("html",)).get_content()


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_email_over_tls_with_a_login(tmp_path, tracking_uri, smtp_receiver, monkeypatch, security):
    from mlops_wb.alerts import notify

    cert = self_signed_cert(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))  # trust the test's own CA, as a team trusts its private CA
    monkeypatch.setenv("MLOPS_WB_SMTP_PASSWORD", SMTP_PASSWORD)
    server = smtp_receiver(security=security, cert=cert, user="mlops-bot", password=SMTP_PASSWORD)
    s = project(tmp_path, tracking_uri, f"channels = email\nsmtp_host = localhost\nsmtp_port = {server.port}\n"
                                        f"smtp_security = {security}\nsmtp_user = mlops-bot\n"
                                        "email_from = mlops@example.com\nemail_to = team@example.com")
    (d,) = notify("rollback", subject="cancer: rolled back to v2", settings=s)
    assert d.delivered, d
    (msg,) = server.messages
    assert msg["tls"] and msg["login"]


def test_a_refused_login_is_recorded_without_the_password(tmp_path, tracking_uri, smtp_receiver, monkeypatch, caplog):
    from mlflow import MlflowClient

    from mlops_wb.alerts import notify

    cert = self_signed_cert(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    monkeypatch.setenv("MLOPS_WB_SMTP_PASSWORD", SMTP_PASSWORD)
    server = smtp_receiver(security="starttls", cert=cert, user="mlops-bot", password="another-password")
    s = project(tmp_path, tracking_uri, f"channels = email\nsmtp_host = localhost\nsmtp_port = {server.port}\n"
                                        "smtp_user = mlops-bot\nemail_from = m@example.com\nemail_to = t@example.com\n"
                                        "backoff = 0.01")
    with caplog.at_level(logging.DEBUG, logger="mlops_wb"):
        (d,) = notify("drift", subject="batch drifted", settings=s)
    assert (d.delivered, d.attempts) == (False, 1)
    assert "refused the login of 'mlops-bot' (535)" in d.error
    client = MlflowClient(tracking_uri=tracking_uri)
    recorded = json.dumps(client.get_run(d.recorded).data.tags)
    for f in ("alert.json", "deliveries.json"):
        with open(client.download_artifacts(d.recorded, f"alert/{f}", str(tmp_path))) as fh:
            recorded += fh.read()
    assert SMTP_PASSWORD not in recorded and SMTP_PASSWORD not in caplog.text
    assert "alert not delivered: email" in caplog.text


def test_undeliverable_alert_is_recorded_in_mlflow_then_listed_and_resent(tmp_path, tracking_uri, http_receiver,
                                                                          secret):
    from mlflow import MlflowClient

    from mlops_wb.alerts import notify

    port = free_port()  # nobody listens there yet
    s = project(tmp_path, tracking_uri, f"channels = webhook\nwebhook_urls = http://127.0.0.1:{port}/hook\n"
                                        "retries = 2\nbackoff = 0.05")
    (d,) = notify("gate_failed", subject="cancer v5 failed 2 quality gates", settings=s,
                  details={"failed": ["min.roc_auc: measured 0.71, threshold >= 0.8", "fairness.gap"]})
    assert (d.delivered, d.attempts) == (False, 3)
    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(d.recorded)
    assert run.info.status == "FAILED"
    assert client.get_experiment(run.info.experiment_id).name == "mlops_wb alerts"
    tags = run.data.tags
    assert (tags["mlops_wb.kind"], tags["mlops_wb.alert.event"], tags["mlops_wb.alert.id"]) == (
        "alert", "gate_failed", d.alert_id)
    assert tags["mlops_wb.alert.undelivered"] == f"webhook http://127.0.0.1:{port}/hook"
    alert = json.load(open(client.download_artifacts(d.recorded, "alert/alert.json", str(tmp_path))))
    assert alert["details"]["failed"][0] == "min.roc_auc: measured 0.71, threshold >= 0.8"

    env = dict(MLOPS_WB_WEBHOOK_SECRET=secret)
    r = cli("alerts", "list", "--json", cwd=tmp_path, **env)
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)
    assert (row["id"], row["event"], row["status"]) == (d.alert_id, "gate_failed", "undelivered")
    r = cli("alerts", "retry", cwd=tmp_path, **env)
    assert r.returncode == 1 and "UNDELIVERED" in r.stdout  # still nobody there

    from alert_receivers import HttpReceiver

    late = HttpReceiver().start(port)
    try:
        r = cli("alerts", "retry", d.alert_id[:8], cwd=tmp_path, **env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "delivered" in r.stdout
        (req,) = late.on("/hook")
        assert req.signature_ok and req.json["id"] == d.alert_id
    finally:
        late.stop()
    assert cli("alerts", "list", cwd=tmp_path, **env).stdout.strip() == "No undelivered alert."
    assert client.get_run(d.recorded).data.tags["mlops_wb.alert.status"] == "delivered"
    assert client.get_run(d.recorded).info.status == "FINISHED"


def test_alert_kept_on_disk_when_the_tracking_store_is_down_too(tmp_path, secret, monkeypatch):
    from alert_receivers import HttpReceiver

    from mlops_wb.alerts import alert_records, notify, retry_alerts

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    port = free_port()
    s = project(tmp_path, f"http://127.0.0.1:{free_port()}", f"channels = webhook\n"
                f"webhook_urls = http://127.0.0.1:{port}/hook\nretries = 0")
    (d,) = notify("drift", subject="batch drifted", settings=s)
    assert not d.delivered and d.recorded == str(tmp_path / ".mlops_wb" / "alerts" / f"{d.alert_id}.json")
    kept = json.loads((tmp_path / ".mlops_wb" / "alerts" / f"{d.alert_id}.json").read_text())
    assert kept["alert"]["subject"] == "batch drifted" and "Connection" in kept["why"], kept["why"]
    receiver = HttpReceiver().start(port)
    try:
        (again,) = retry_alerts(settings=s, client=_NoStore())
        assert again.delivered
    finally:
        receiver.stop()
    assert not (tmp_path / ".mlops_wb" / "alerts" / f"{d.alert_id}.json").exists()
    assert alert_records(settings=s, client=_NoStore()).empty


class _NoStore:
    "A client of a store that has no alerts experiment (the real store is down in this test)."

    def get_experiment_by_name(self, name):
        return None


def test_secrets_in_settings_ini_are_refused(tmp_path):
    (tmp_path / "settings.ini").write_text("[alerts]\nchannels = email\nsmtp_password = hunter2\n")
    r = cli("alerts", "test", cwd=tmp_path)
    assert r.returncode == 1
    assert ("settings.ini never holds secrets, and the key 'smtp_password' in section [alerts] looks like one. "
            "Delete it and put the secret in the environment: MLOPS_WB_WEBHOOK_SECRET") in r.stderr
    assert "hunter2" not in r.stderr
    (tmp_path / "settings.ini").write_text("[alerts]\nchannels = webhook\nwebhook_urls = https://u:pw@h.example/x\n")
    r = cli("alerts", "test", cwd=tmp_path)
    assert r.returncode == 1 and "holds a password, and settings.ini never holds secrets" in r.stderr


def test_alerts_test_command_reaches_every_channel(tmp_path, tracking_uri, http_receiver, smtp_receiver):
    server = smtp_receiver()
    (tmp_path / "settings.ini").write_text(
        f"[tracking]\nuri = {tracking_uri}\n[alerts]\nchannels = webhook, slack, email\n"
        f"webhook_urls = {http_receiver.url('/a')}, {http_receiver.url('/b')}\n"
        f"smtp_host = 127.0.0.1\nsmtp_port = {server.port}\nsmtp_security = none\n"
        "email_from = mlops@example.com\nemail_to = team@example.com\n")
    r = cli("alerts", "test", cwd=tmp_path, MLOPS_WB_WEBHOOK_SECRET=RECEIVER_SECRET,
            MLOPS_WB_SLACK_WEBHOOK_URL=http_receiver.url("/services/T/B/token"))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"webhook {http_receiver.url('/a')}: delivered (1 attempt, 200)"
    assert lines[2] == f"slack http://127.0.0.1:{http_receiver.port}/services/***: delivered (1 attempt, 200)"
    assert lines[3] == f"email 127.0.0.1:{server.port} to team@example.com: delivered (1 attempt, 250)"
    assert [r.signature_ok for r in http_receiver.requests] == [True, True, None]
    assert "token" not in r.stdout + r.stderr
    assert server.messages[0]["message"]["X-Mlops-Wb-Event"] == "test"
    r = cli("alerts", "test", "--event", "drift", cwd=tmp_path)  # no secret: the webhook cannot sign
    assert r.returncode == 1
    assert "webhook alerts are signed, and $MLOPS_WB_WEBHOOK_SECRET is not set" in r.stdout


def test_events_not_listed_are_not_sent(tmp_path, tracking_uri, http_receiver, secret):
    from mlops_wb.alerts import notify

    s = project(tmp_path, tracking_uri, f"channels = webhook\nwebhook_urls = {http_receiver.url()}\nevents = drift")
    assert notify("promotion", subject="v3 promoted", settings=s) == []
    assert len(notify("drift", subject="drifted", settings=s)) == 1
    assert len(http_receiver.requests) == 1
    with pytest.raises(ValueError, match="The 'event' parameter of notify must be one of"):
        notify("promoted", subject="x", settings=s)
