"""The approval workflow against real MLflow stores: transitions, every policy error, tampering, failures midway,
rollback, two processes racing, serving by alias, and the `mlops-wb` console script.

These tests play several people on one machine, so their settings.ini allows declared names (`played_users` in
conftest.py); tests/test_trust.py shows the local store without that allowance."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import pytest

from conftest import BIN, clean_env, log_gates, log_models

warnings.filterwarnings("ignore")


def _client(uri):
    from mlops_wb.core import get_client

    return get_client(uri)


@pytest.fixture
def models(tracking_uri, played_users):
    "A store with three logged models, each with a passing gate report; MLOPS_WB_USER unset."
    runs = log_models(tracking_uri, 3)
    for r in runs:
        log_gates(tracking_uri, r)
    return tracking_uri, runs


def _prepare(uri, runs, *, approved=(), champion=None, registrant="dana"):
    "Register every run (as `registrant`), request approval, approve `approved`, promote `champion`."
    from mlops_wb.registry import ApprovalPolicy, approve, promote, register, request_approval

    client, pol = _client(uri), ApprovalPolicy(approvers=("alice", "bob"))
    for r in runs:
        v = register(r, "cancer", user=registrant, client=client).version
        request_approval("cancer", v, user=registrant, client=client)
    for v in approved:
        approve("cancer", v, approver="alice", comment="gates passed", client=client, policy=pol)
    if champion:
        promote("cancer", champion, approver="alice", comment="release", client=client, policy=pol)
    return client, pol


def _aliases(client):
    return {a: str(v) for a, v in client.get_registered_model("cancer").aliases.items()}


def _tags(client):
    return {str(mv.version): mv.tags.get("mlops_wb.status") for mv in client.search_model_versions("name = 'cancer'")}


def test_every_transition(models):
    from mlops_wb.registry import approve, history, promote, reject, rollback, set_canary, status, verify_audit

    uri, runs = models
    client, pol = _prepare(uri, runs)
    assert _tags(client) == {"1": "pending", "2": "pending", "3": "pending"}
    rec = approve("cancer", 1, approver="alice", comment="baseline", client=client, policy=pol)
    assert (rec.from_state, rec.to_state, rec.actor, rec.seq) == ("pending", "approved", "alice", 7)
    promote("cancer", 1, approver="bob", comment="first", client=client, policy=pol)
    approve("cancer", 2, approver="bob", comment="try it", canary_weight=0.1, client=client, policy=pol)
    assert _aliases(client) == {"champion": "1", "canary": "2"}
    assert client.get_model_version("cancer", "2").tags["mlops_wb.canary_weight"] == "0.1"
    set_canary("cancer", 2, weight=0.3, approver="alice", comment="more", client=client, policy=pol)
    assert client.get_model_version("cancer", "2").tags["mlops_wb.canary_weight"] == "0.3"
    promote("cancer", 2, approver="alice", comment="canary fine", client=client, policy=pol)
    assert _aliases(client) == {"champion": "2"}
    assert _tags(client) == {"1": "retired", "2": "champion", "3": "pending"}
    reject("cancer", 3, approver="bob", comment="not needed", client=client, policy=pol)
    rollback("cancer", approver="bob", comment="incident 12", client=client, policy=pol)
    assert _aliases(client) == {"champion": "1"}
    assert status("cancer", client=client)["status"].tolist() == ["champion", "rolled_back", "rejected"]
    h = history("cancer", client=client)
    assert h["action"].tolist() == ["register", "request"] * 3 + ["approve", "promote", "approve", "canary", "promote",
                                                                   "reject", "rollback"]
    assert (h["outcome"] == "ok").all() and h["seq"].tolist() == list(range(1, 14))
    assert h.iloc[-1][["from_state", "to_state", "champion_before", "champion_after"]].tolist() == [
        "retired", "champion", "2", "1"]
    assert verify_audit("cancer", client=client).ok


def test_every_policy_violation_has_its_exact_error(models):
    from mlops_wb.core import ApprovalError
    from mlops_wb.registry import ApprovalPolicy, approve, history, promote, register, reject, request_approval, rollback

    uri, runs = models
    client = _client(uri)
    pol = ApprovalPolicy(approvers=("alice", "bob", "dana", "erin"))
    register(runs[0], "cancer", user="dana", client=client)
    register(runs[1], "cancer", user="dana", client=client)
    log_gates(uri, runs[1], passed=False)
    cases = [
        (lambda: approve("cancer", 1, approver="alice", comment="ok", client=client, policy=pol),
         "cancer v1 is registered; only a version that is pending can be approved. Request approval first: "
         "request_approval(name, version)."),
    ]
    for call, msg in cases:
        with pytest.raises(ApprovalError) as e:
            call()
        assert str(e.value) == msg
    request_approval("cancer", 1, user="erin", client=client)
    request_approval("cancer", 2, user="dana", client=client)
    cases = [
        (lambda: approve("cancer", 1, approver="zoe", comment="ok", client=client, policy=pol),
         "'zoe' may not approve cancer v1: only the listed approvers may (alice, bob, dana, erin). Ask one of them, "
         "or have your name added to [approval] approvers."),
        (lambda: approve("cancer", 1, approver="alice", comment="ok", client=client, policy=ApprovalPolicy()),
         "Nobody may approve versions of 'cancer': the approvers list ([approval] approvers in settings.ini) is "
         "empty. Ask whoever keeps the settings to list the people who decide."),
        (lambda: approve("cancer", 1, approver="dana", comment="ok", client=client, policy=pol),
         "'dana' may not approve cancer v1: they registered it, and the four-eyes rule forbids approving your own "
         "work. Ask another approver."),
        (lambda: approve("cancer", 1, approver="erin", comment="ok", client=client, policy=pol),
         "'erin' may not approve cancer v1: they requested its approval, and the four-eyes rule forbids approving "
         "your own work. Ask another approver."),
        (lambda: approve("cancer", 2, approver="alice", comment="ok", client=client, policy=pol),
         "cancer v2 failed its quality gates (fairness.gap). Approving it needs override='<justification>': an "
         "explicit override, recorded in the audit trail."),
        (lambda: approve("cancer", 1, approver="alice", comment="", client=client, policy=pol),
         "A comment is required to approve cancer v1: say why, for the audit trail. Pass comment='...'."),
        (lambda: approve("cancer", 1, approver="alice", client=client, policy=pol),
         "A comment is required to approve cancer v1: say why, for the audit trail. Pass comment='...'."),
        (lambda: promote("cancer", 1, approver="alice", comment="go", client=client, policy=pol),
         "cancer v1 is pending; only a version that is approved or canary or retired can be promoted. Approve it "
         "first."),
        (lambda: rollback("cancer", approver="alice", comment="oops", client=client, policy=pol),
         "cancer has no champion, so there is nothing to roll back."),
        (lambda: reject("cancer", 1, approver="zoe", comment="no", client=client, policy=pol),
         "'zoe' may not reject cancer v1: only the listed approvers may (alice, bob, dana, erin). Ask one of them, "
         "or have your name added to [approval] approvers."),
    ]
    for call, msg in cases:
        with pytest.raises(ApprovalError) as e:
            call()
        assert str(e.value) == msg
    # the environment variable names the user when no argument does
    os.environ["MLOPS_WB_USER"] = "dana"
    try:
        with pytest.raises(ApprovalError, match="'dana' may not approve cancer v1: they registered it"):
            approve("cancer", 1, comment="ok", client=client, policy=pol)
    finally:
        del os.environ["MLOPS_WB_USER"]
    # an override with a justification lets a failed version through, and is recorded
    rec = approve("cancer", 2, approver="alice", comment="ok", override="accepted risk, ticket 7", client=client,
                  policy=pol)
    assert json.loads(rec.evidence)["gates"] == "failed" and rec.override == "accepted risk, ticket 7"
    h = history("cancer", client=client)
    denied = h[h["outcome"] == "denied"]
    assert len(denied) == 12 and denied["reason"].str.len().min() > 20
    assert _tags(client) == {"1": "pending", "2": "approved"}  # refusals changed nothing
    # approving by hand, outside the workflow, does not let a version through
    client.set_model_version_tag("cancer", "1", "mlops_wb.status", "approved")
    with pytest.raises(ApprovalError) as e:
        promote("cancer", 1, approver="alice", comment="go", client=client, policy=pol)
    assert str(e.value) == ("cancer v1 is approved in the registry, but its audit trail says pending: its state was "
                            "changed outside the workflow. Run verify_audit('cancer') and repair it first.")


def test_tampering_is_detected(models):
    from mlops_wb.registry import status, verify_audit

    uri, runs = models
    client, _ = _prepare(uri, runs[:2], approved=(1,), champion=1)
    assert verify_audit("cancer", client=client).problems == []
    recs = {int(r.data.tags["mlops_wb.audit.seq"]): r.info.run_id
            for r in client.search_runs([client.get_experiment_by_name("mlops_wb-audit/cancer").experiment_id])}
    client.set_tag(recs[3], "mlops_wb.audit.comment", "rewritten")
    assert verify_audit("cancer", client=client).problems == [
        f"Record #3 (run {recs[3]}) was edited: its contents no longer match its hash."]
    client.delete_run(recs[5])
    problems = verify_audit("cancer", client=client).problems
    assert f"Record #5 (run {recs[5]}) was deleted: its run is in the deleted state." in problems
    client.restore_run(recs[5])
    # MLflow's own client: swap two records' sequence numbers (#1 and #2 are both version 1's register/request...)
    client.set_tag(recs[1], "mlops_wb.audit.seq", "000002")
    client.set_tag(recs[2], "mlops_wb.audit.seq", "000001")
    prev1 = client.get_run(recs[2]).data.tags["mlops_wb.audit.prev_hash"]
    assert verify_audit("cancer", client=client).problems == [
        f"Record #1 (run {recs[2]}) was edited: its contents no longer match its hash.",
        f"Record #2 (run {recs[1]}) was edited: its contents no longer match its hash.",
        f"Record #3 (run {recs[3]}) was edited: its contents no longer match its hash.",
        f"Record #1 names a predecessor ({prev1[:12]}...), but the trail starts with it.",
        "Record #2 does not follow record #1: it names another predecessor (records were reordered or replaced).",
        "Record #3 does not follow record #2: it names another predecessor (records were reordered or replaced)."]
    # the alias moved by hand
    client.set_registered_model_alias("cancer", "champion", "2")
    problems = verify_audit("cancer", client=client).problems
    assert "The champion alias points to v2, but the audit trail says v1: it was changed outside the workflow." in \
        problems
    shown = status("cancer", client=client)
    assert "The champion alias points to v2, but the audit trail says v1: it was changed outside the workflow." in \
        shown.attrs["problems"]


def test_rollback_restores_the_previous_champion(models):
    from mlops_wb.core import ApprovalError
    from mlops_wb.registry import load_model, promote, rollback, verify_audit

    uri, runs = models
    client, pol = _prepare(uri, runs, approved=(1, 2, 3), champion=1)
    promote("cancer", 2, approver="bob", comment="v2", client=client, policy=pol)
    promote("cancer", 3, approver="bob", comment="v3", client=client, policy=pol)
    assert _aliases(client) == {"champion": "3"}
    rec = rollback("cancer", approver="alice", comment="bad latency", client=client, policy=pol)
    assert (rec.version, rec.champion_before, rec.champion_after) == ("2", "3", "2")
    assert _aliases(client) == {"champion": "2"}
    assert _tags(client) == {"1": "retired", "2": "champion", "3": "rolled_back"}
    model = load_model("cancer", flavor="sklearn", client=client)
    assert model.C == 0.1  # v2 was trained with C = 10 ** (1 - 2)
    rollback("cancer", approver="alice", comment="again", client=client, policy=pol)
    assert _aliases(client) == {"champion": "1"}
    with pytest.raises(ApprovalError, match="cancer has no previous champion to roll back to: v1 is the first"):
        rollback("cancer", approver="alice", comment="and again", client=client, policy=pol)
    assert verify_audit("cancer", client=client).ok


class _Refusing:
    "A real MlflowClient that refuses one method (optionally only for some arguments)."

    def __init__(self, inner, method, when=lambda *a, **k: True):
        self._inner, self._method, self._when = inner, method, when

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def refuse(*a, **k):
            if self._when(*a, **k):
                raise RuntimeError("store went away")
            return attr(*a, **k)
        return refuse


@pytest.mark.parametrize("method", ["set_registered_model_alias", "set_model_version_tag", "create_run"])
def test_failure_midway_leaves_the_previous_state(models, method):
    from mlops_wb.core import TrackingError
    from mlops_wb.registry import history, promote, verify_audit

    uri, runs = models
    client, pol = _prepare(uri, runs[:2], approved=(1, 2), champion=1)
    before = (_aliases(client), _tags(client))
    n = len(history("cancer", client=client))
    # create_run fails only for the ok record, so the failed attempt can still be recorded
    calls = []
    when = (lambda *a, **k: not calls.append(1) and len(calls) == 1) if method == "create_run" else (lambda *a, **k: True)
    with pytest.raises(TrackingError, match="Could not promote cancer v2: store went away. The previous state was "
                                            "restored."):
        promote("cancer", 2, approver="bob", comment="go", client=_Refusing(client, method, when), policy=pol)
    assert (_aliases(client), _tags(client)) == before
    h = history("cancer", client=client)
    assert len(h) == n + 1 and h.iloc[-1][["action", "outcome"]].tolist() == ["promote", "failed"]
    assert "store went away" in h.iloc[-1]["reason"]
    assert verify_audit("cancer", client=client).ok
    promote("cancer", 2, approver="bob", comment="retry", client=client, policy=pol)  # and it can be retried
    assert _aliases(client) == {"champion": "2"}


RACER = textwrap.dedent("""
    import os, sys, time, json
    from pathlib import Path
    from mlops_wb.core import get_client, ApprovalError
    from mlops_wb.registry import ApprovalPolicy, promote, model_state
    uri, me, mine, folder = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
    client, pol = get_client(uri), ApprovalPolicy(approvers=("alice", "bob"))
    out = {}

    def barrier(name):
        (folder / f"{name}-{me}").touch()
        while len(list(folder.glob(f"{name}-*"))) < 2:
            time.sleep(0.01)

    barrier("start")
    promote("cancer", mine, approver=me, comment=f"round 1 by {me}", client=client, policy=pol)
    out["round1"] = "ok"
    barrier("round2")
    champ = model_state("cancer", client=client).snapshot.champion
    out["seen"] = champ
    barrier("go2")
    target = "1"  if me == "alice" else ({"2": "3", "3": "2"}[champ])
    try:
        promote("cancer", target, approver=me, comment=f"round 2 by {me}", expected_champion=champ, client=client,
                policy=pol)
        out["round2"] = "ok"
    except ApprovalError as e:
        out["round2"] = str(e)
    print(json.dumps(out))
""")


def _race(uri, tmp_path):
    "Two real processes promote at once, twice; return their reports."
    env = clean_env(MLOPS_WB_SETTINGS=os.environ["MLOPS_WB_SETTINGS"])  # the test's settings: alice and bob approve
    procs = [subprocess.Popen([sys.executable, "-c", RACER, uri, me, v, str(tmp_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for me, v in (("alice", "2"), ("bob", "3"))]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs


def _check_race(uri, outs):
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    from mlops_wb.registry import history, verify_audit

    assert [o["round1"] for o in outs] == ["ok", "ok"]  # serialised: both promotions happened, one after the other
    assert outs[0]["seen"] == outs[1]["seen"]
    r2 = [o["round2"] for o in outs]
    assert sorted(r2)[-1] == "ok" and r2.count("ok") == 1, r2  # exactly one of the racing promotions won
    loser = next(x for x in r2 if x != "ok")
    assert "it changed since you looked" in loser
    # checked with MLflow's own client, not ours
    mc = MlflowClient(tracking_uri=uri, registry_uri=uri)
    aliases = dict(mc.get_registered_model("cancer").aliases)
    tags = {str(mv.version): mv.tags.get("mlops_wb.status") for mv in mc.search_model_versions("name = 'cancer'")}
    assert list(tags.values()).count("champion") == 1
    assert tags[str(aliases["champion"])] == "champion"
    assert "canary" not in aliases
    locks = [e.name for e in mc.search_experiments(view_type=ViewType.ACTIVE_ONLY) if e.name.startswith(".mlops_wb-lock")]
    assert locks == [], locks
    h = history("cancer", client=mc)
    promos = h[h["action"] == "promote"].iloc[1:]  # after the initial promotion of v1
    assert len(promos) == 4 and promos["outcome"].tolist().count("ok") == 3
    assert promos["comment"].str.startswith("round").all()
    assert h["seq"].tolist() == list(range(1, len(h) + 1))
    winner = promos[(promos["outcome"] == "ok")].iloc[-1]
    assert str(aliases["champion"]) == winner["version"]
    assert verify_audit("cancer", client=mc).ok


def test_two_processes_racing_sqlite(models, tmp_path):
    uri, runs = models
    _prepare(uri, runs, approved=(1, 2, 3), champion=1, registrant="dana")
    _check_race(uri, _race(uri, tmp_path))


def test_two_processes_racing_on_an_mlflow_server(mlflow_server, tmp_path, played_users):
    uri = mlflow_server
    from mlops_wb.core import get_client

    if get_client(uri).search_registered_models(filter_string="name = 'cancer'"):
        pytest.skip("the shared server already holds a model named cancer")
    runs = log_models(uri, 3, experiment=f"train-{os.getpid()}-{tmp_path.name}")
    for r in runs:
        log_gates(uri, r)
    _prepare(uri, runs, approved=(1, 2, 3), champion=1)
    _check_race(uri, _race(uri, tmp_path))


def test_console_script(models, tmp_path):
    uri, runs = models
    (tmp_path / "settings.ini").write_text(f"[tracking]\nuri = {uri}\n[registry]\nmodel_name = cancer\n"
                                           "[approval]\napprovers = alice, dana\nallow_declared_user = true\n")

    def run(*args, user, code=0):
        r = subprocess.run([str(BIN / "mlops-wb"), *args], cwd=tmp_path, env=clean_env(MLOPS_WB_USER=user),
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == code, (r.stdout, r.stderr)
        return r

    # register and request through the library (each console-script process costs seconds), decide through the CLI
    from mlops_wb.registry import register, request_approval

    register(runs[0], "cancer", user="dana", client=_client(uri))
    request_approval("cancer", 1, user="dana", client=_client(uri))
    r = run("approve", "1", "-c", "looks good", user="dana", code=1)
    assert r.stderr.strip() == ("Error: 'dana' may not approve cancer v1: they registered it, and the four-eyes rule "
                                "forbids approving your own work. Ask another approver.")
    # the README's form: the model's name before the version
    assert "Recorded #4: approve cancer v1 (pending -> approved) by alice." in \
        run("approve", "cancer", "1", "-c", "looks good", user="alice").stdout
    r = run("audit", "--verify", "--json", user="alice")
    assert json.loads(r.stdout) == {"model": "cancer", "ok": True, "records": 4, "signed": 0,
                                    "signatures": "none", "problems": []}


def test_signed_trail_through_the_console_script(models, tmp_path, monkeypatch):
    "With the team's audit key every record is signed; `audit --verify` checks the signatures with it."
    from mlops_wb.registry import ApprovalPolicy, approve, promote, register, request_approval

    uri, runs = models
    key = "a-team-secret-of-more-than-16-bytes"
    monkeypatch.setenv("MLOPS_WB_AUDIT_KEY", key)
    client, pol = _client(uri), ApprovalPolicy(approvers=("alice",))
    register(runs[0], "cancer", user="dana", client=client)
    request_approval("cancer", 1, user="dana", client=client)
    approve("cancer", 1, approver="alice", comment="gates passed", client=client, policy=pol)
    promote("cancer", 1, approver="alice", comment="release", client=client, policy=pol)
    (tmp_path / "settings.ini").write_text(f"[tracking]\nuri = {uri}\n[registry]\nmodel_name = cancer\n")

    def verify(**env):
        r = subprocess.run([str(BIN / "mlops-wb"), "audit", "--verify", "--json"], cwd=tmp_path,
                           env=clean_env(**env), capture_output=True, text=True, timeout=300)
        assert key not in r.stdout + r.stderr
        return r.returncode, json.loads(r.stdout)

    code, out = verify(MLOPS_WB_AUDIT_KEY=key)
    assert (code, out["ok"], out["records"], out["signed"], out["signatures"]) == (0, True, 4, 4, "verified"), out
    code, out = verify()  # without the key: intact, signatures not checked
    assert (code, out["signatures"]) == (0, "unchecked"), out
    code, out = verify(MLOPS_WB_AUDIT_KEY="someone-elses-key-of-enough-length")
    assert code == 1 and all("is signed with another audit key" in p for p in out["problems"]), out
