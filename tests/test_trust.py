"""The local store, honest: each bypass of the approval workflow that issue 15 lists, tried on a real SQLite store.

On a local store the library cannot stop the file's owner, so it refuses what it can decide (a declared name where
settings.ini does not allow one, a policy looser than the settings', auto-approval by anyone but the automation
identity) and records the rest as what it is (a declared name beside the OS login, the policy's digest), and the
trail must explain the registry: an emptied trail, or an alias moved with MLflow's own client, is reported by
`verify_audit`, `mlops-wb audit --verify` and `mlops-wb status`.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import warnings

import pytest

from conftest import BIN, REPO, clean_env, log_gates

warnings.filterwarnings("ignore")

STRICT = "[approval]\napprovers = alice, bob\nfour_eyes = true\n"  # a real project: declared names are not allowed


def candidate(client, exp_id: str, *, passed: bool = True) -> str:
    "A run with a logged model and a real gate report that passed (or failed on fairness); its run id."
    run_id = client.create_run(exp_id).info.run_id
    client.create_logged_model(exp_id, name="model", source_run_id=run_id)
    log_gates(client.tracking_uri, run_id, passed)
    return run_id


@pytest.fixture
def project(tmp_path, tracking_uri, monkeypatch):
    "A project folder with a strict settings.ini (and the store's URI), the current folder; no declared user."
    for var in ("MLOPS_WB_USER", "MLOPS_WB_SETTINGS", "MLFLOW_TRACKING_URI", "MLOPS_WB_AUDIT_KEY"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "settings.ini").write_text(f"[tracking]\nuri = {tracking_uri}\n[registry]\nmodel_name = m\n" + STRICT)
    monkeypatch.chdir(tmp_path)
    from mlops_wb.core import get_client

    client = get_client(tracking_uri)
    return tmp_path, client, client.create_experiment("runs", artifact_location=f"file://{tmp_path}/artifacts")


def settings_with(folder, text):
    "Load a settings.ini holding `text` (and nothing else), written into `folder`."
    from mlops_wb.core import load_settings

    (folder / "alt.ini").write_text(text)
    return load_settings(folder / "alt.ini")


def cli(*args, cwd, code=0, **env):
    r = subprocess.run([str(BIN / "mlops-wb"), *args], cwd=cwd, env=clean_env(**env), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    return r


def test_a_declared_name_is_refused_unless_the_settings_allow_it_and_then_recorded_beside_the_login(project,
                                                                                                   monkeypatch):
    from mlops_wb.core import ApprovalError, load_settings, os_login
    from mlops_wb.registry import approve, history, register, request_approval

    root, client, exp = project
    me = os_login()
    strict = load_settings()
    demo = settings_with(root, STRICT + "allow_declared_user = true\n")
    v = register(candidate(client, exp), "m", client=client, settings=strict).version  # as the OS login
    request_approval("m", v, client=client, settings=strict)
    # the repro: MLOPS_WB_USER=alice mlops-wb approve 3 -m m -c ok --override x --user bob
    r = cli("approve", v, "-m", "m", "-c", "ok", "--override", "x", "--user", "bob", cwd=root, code=1,
            MLOPS_WB_USER="alice")
    assert r.stderr.strip() == (
        f"Error: approve: on a local store you act as your operating-system login, {me!r}; the name 'bob' (from the "
        f"'approver' argument) cannot act in its place. Drop it to act as {me!r}. For separate people, share an "
        "mlops_wb server (mlops-wb server start --auth), where everyone logs in as themselves.")
    assert "allow_declared_user" not in r.stderr  # a refusal never says how to get around it
    monkeypatch.setenv("MLOPS_WB_USER", "alice")
    with pytest.raises(ApprovalError, match=r"the name 'alice' \(from \$MLOPS_WB_USER\) cannot act"):
        approve("m", v, comment="ok", client=client, settings=strict)
    monkeypatch.delenv("MLOPS_WB_USER")
    # an override cannot allow what the file does not
    loose = load_settings(overrides={"approval.allow_declared_user": True})
    with pytest.raises(ApprovalError, match="cannot act in its place"):
        approve("m", v, approver="bob", comment="ok", client=client, settings=loose)
    # where the file allows it (a demo, a test), the record keeps both names
    rec = approve("m", v, approver="bob", comment="ok", client=client, settings=demo)
    assert (rec.actor, rec.auth, rec.login, rec.address != "") == ("bob", "declared", me, True)
    h = history("m", client=client)
    assert h[["actor", "auth", "login"]].values.tolist()[-1] == ["bob", "declared", me]
    assert h.iloc[0][["actor", "auth", "login"]].tolist() == [me, "login", me]
    assert len(h) == 3  # the refusals above were argument errors: nothing was attempted, nothing recorded


def test_a_policy_argument_may_tighten_but_never_loosen(project):
    from mlops_wb.core import ApprovalError, load_settings
    from mlops_wb.registry import ApprovalPolicy, approve, register, request_approval

    root, client, exp = project
    demo = settings_with(root, STRICT + "allow_declared_user = true\n")
    v = register(candidate(client, exp), "m", user="alice", client=client, settings=demo).version
    request_approval("m", v, user="alice", client=client, settings=demo)
    # the repro: alice approves her own version with a policy of her own
    with pytest.raises(ApprovalError) as e:
        approve("m", v, approver="alice", comment="mine", client=client, settings=demo,
                policy=ApprovalPolicy(approvers=("alice",), four_eyes=False))
    assert str(e.value) == (f"The policy passed to approve is looser than the [approval] policy of {root / 'alt.ini'}: "
                            "it turns off four_eyes. An argument can only tighten the policy, never loosen it.")
    assert "policy=" not in str(e.value)
    with pytest.raises(ApprovalError, match="it lists approvers the settings do not \\(mallory\\)"):
        approve("m", v, approver="mallory", comment="x", client=client, settings=demo,
                policy=ApprovalPolicy(approvers=("mallory",)))
    loose = load_settings(root / "alt.ini", overrides={"approval.four_eyes": False})
    with pytest.raises(ApprovalError, match="The settings overrides passed to approve are looser"):
        approve("m", v, approver="alice", comment="mine", client=client, settings=loose)
    # a tighter one applies, and the record names the policy that decided
    tight = ApprovalPolicy(approvers=("bob",))
    rec = approve("m", v, approver="bob", comment="fine", client=client, settings=demo, policy=tight)
    assert rec.policy == tight.digest and json.loads(rec.evidence)["policy"]["approvers"] == ["bob"]
    assert json.loads(rec.evidence)["policy"]["source"] == f"the [approval] policy of {root / 'alt.ini'}"


def test_auto_approval_applies_to_the_automation_identity_only_with_the_repository_settings(project):
    "The repository's own settings.ini (auto_approve = true) lets nobody unlisted approve: not mallory, not the login."
    from mlops_wb.core import ApprovalError, load_settings, os_login
    from mlops_wb.registry import allowed_actions, approve, history, promote, register, request_approval

    root, client, exp = project
    shutil.copy(REPO / "settings.ini", root / "settings.ini")
    repo = load_settings(root / "settings.ini")
    assert repo.approval.auto_approve and repo.approval.automation_user == "demo-pipeline"
    v = register(candidate(client, exp), "m", user="data-scientist", client=client, settings=repo).version
    request_approval("m", v, user="data-scientist", client=client, settings=repo)
    for who in ("mallory", None):  # a named outsider, and the OS login (not listed either)
        name = who or os_login()
        with pytest.raises(ApprovalError, match=f"'{name}' may not approve m v1: only the listed approvers may "
                                                r"\(reviewer\)"):
            approve("m", v, approver=who, comment="gates passed", client=client, settings=repo)
        decisions = allowed_actions("m", v, user=who, client=client, settings=repo)  # what the widget shows
        assert not decisions["approve"] and not decisions["promote"], decisions
    h = history("m", client=client)
    assert h["outcome"].tolist()[-2:] == ["denied", "denied"] and h["actor"].tolist()[-2:] == ["mallory", os_login()]
    # the automation identity, whose candidate passed every gate, approves and promotes it
    rec = approve("m", v, approver="demo-pipeline", comment="auto", client=client, settings=repo)
    assert (rec.outcome, rec.auth, rec.login) == ("ok", "declared", os_login())
    promote("m", v, approver="demo-pipeline", comment="auto", client=client, settings=repo)
    # but never a candidate whose gates failed
    v2 = register(candidate(client, exp, passed=False), "m", user="data-scientist", client=client, settings=repo).version
    request_approval("m", v2, user="data-scientist", client=client, settings=repo)
    with pytest.raises(ApprovalError, match="'demo-pipeline' may not approve m v2: only the listed approvers"):
        approve("m", v2, approver="demo-pipeline", comment="auto", override="no", client=client, settings=repo)


def test_a_widget_user_trait_cannot_act_for_someone_else_on_a_strict_store(project):
    from mlops_wb.registry import model_state, register, request_approval
    from mlops_wb.widgets import DeploymentApproval

    root, client, exp = project
    v = register(candidate(client, exp), "m", client=client).version
    request_approval("m", v, client=client)
    w = DeploymentApproval("m", user="bob", client=client)
    w._comment.value = "looks fine"
    assert w._buttons["approve"].disabled
    assert "cannot act in its place" in w._reasons.value
    w.act("approve")
    assert "cannot act in its place" in w.status_text
    assert model_state("m", client=client).versions[v].status == "pending"


def test_an_emptied_trail_fails_verification_everywhere(project, tracking_uri):
    "Hard-delete every audit run and remove the head pointer: verify_audit, audit --verify and status all fail."
    from mlops_wb.core import load_settings
    from mlops_wb.registry import AUDIT_HEAD_TAG, approve, promote, register, request_approval, verify_audit

    root, client, exp = project
    demo = settings_with(root, STRICT + "allow_declared_user = true\n")
    for _ in range(2):
        v = register(candidate(client, exp), "m", user="dana", client=client, settings=demo).version
        request_approval("m", v, user="dana", client=client, settings=demo)
    approve("m", 1, approver="alice", comment="ok", client=client, settings=demo)
    promote("m", 1, approver="bob", comment="go", client=client, settings=demo)
    assert verify_audit("m", client=client, settings=load_settings()).ok
    audit = client.get_experiment_by_name("mlops_wb-audit/m").experiment_id
    run_ids = [r.info.run_id for r in client.search_runs([audit])]
    assert len(run_ids) == 6
    for run_id in run_ids:
        client.delete_run(run_id)
    r = subprocess.run([str(BIN / "mlflow"), "gc", "--backend-store-uri", tracking_uri, "--run-ids",
                        ",".join(run_ids)], env=clean_env(MLFLOW_TRACKING_URI=tracking_uri), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    client.delete_registered_model_tag("m", AUDIT_HEAD_TAG)
    assert client.search_runs([audit]) == [] and AUDIT_HEAD_TAG not in client.get_registered_model("m").tags
    check = verify_audit("m", client=client)
    assert (check.ok, check.records) == (False, 0)
    assert check.problems == [
        "The champion alias points to v1, but the audit trail says no version: it was changed outside the workflow.",
        "Version 1 carries mlops_wb.status = 'champion', but no audit record registers it: the tag was set outside "
        "the workflow, or the trail was emptied or cut.",
        "Version 2 carries mlops_wb.status = 'pending', but no audit record registers it: the tag was set outside "
        "the workflow, or the trail was emptied or cut."]
    r = cli("audit", "--verify", "--json", cwd=root, code=1)
    assert json.loads(r.stdout)["problems"] == check.problems
    r = cli("status", cwd=root, code=1)
    assert "TAMPERING: the audit trail of 'm' does not explain 3 thing(s) in the registry:" in r.stdout, r.stdout


def test_an_alias_moved_with_mlflows_own_client_is_reported_and_stops_the_workflow(project):
    "Locally nothing can stop the file's owner; the move is reported by status and verify, and transitions refuse."
    from mlops_wb.core import ApprovalError
    from mlops_wb.registry import approve, promote, register, request_approval, status, verify_audit

    root, client, exp = project
    demo = settings_with(root, STRICT + "allow_declared_user = true\n")
    for _ in range(2):
        v = register(candidate(client, exp), "m", user="dana", client=client, settings=demo).version
        request_approval("m", v, user="dana", client=client, settings=demo)
        approve("m", v, approver="alice", comment="ok", client=client, settings=demo)
    promote("m", 1, approver="bob", comment="go", client=client, settings=demo)
    client.set_registered_model_alias("m", "champion", "2")  # MLflow's own client, around the workflow
    why = "The champion alias points to v2, but the audit trail says v1: it was changed outside the workflow."
    assert why in verify_audit("m", client=client).problems
    assert why in status("m", client=client).attrs["problems"]
    with pytest.raises(ApprovalError) as e:
        promote("m", 2, approver="bob", comment="again", expected_champion=1, client=client, settings=demo)
    assert str(e.value) == ("m v2 is champion in the registry, but its audit trail says approved: its state was "
                            "changed outside the workflow. Run verify_audit('m') and repair it first.")


def test_a_signed_trail_is_continued_only_with_its_key(project, monkeypatch):
    from mlops_wb.core import ApprovalError
    from mlops_wb.registry import register, request_approval, verify_audit

    root, client, exp = project
    demo = settings_with(root, STRICT + "allow_declared_user = true\n")
    key = "the-teams-audit-key-0123456789"
    monkeypatch.setenv("MLOPS_WB_AUDIT_KEY", key)
    v = register(candidate(client, exp), "m", user="dana", client=client, settings=demo).version
    monkeypatch.delenv("MLOPS_WB_AUDIT_KEY")
    with pytest.raises(ApprovalError, match="this process holds no audit key, so it cannot continue the trail"):
        request_approval("m", v, user="dana", client=client, settings=demo)
    monkeypatch.setenv("MLOPS_WB_AUDIT_KEY", "someone-elses-key-0123456789")
    with pytest.raises(ApprovalError, match="holds another key"):
        request_approval("m", v, user="dana", client=client, settings=demo)
    monkeypatch.setenv("MLOPS_WB_AUDIT_KEY", key)
    request_approval("m", v, user="dana", client=client, settings=demo)
    assert verify_audit("m", client=client, key=key).ok
