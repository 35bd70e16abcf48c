"""Trust on a shared server: `mlops-wb server start --auth` on a real PostgreSQL, with real users.

alice is a data scientist, bob and carol approve, mallory is nobody, pipeline is the automation identity, dana an
MLflow admin. The server runs MLflow's basic auth and the mlops_wb app; these tests try every way around the
approval workflow that a user of the library, the CLI, the widget or MLflow's own client has, and check what the
server answered and what the store holds afterwards (with MLflow's own client).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import BIN, clean_env, free_port, log_gates

warnings.filterwarnings("ignore")
# one PostgreSQL and one auth server for the module; the first test also pays for starting them (minutes on a
# loaded machine), so the per-test limit is raised: a guard against hanging, never an assertion on speed
pytestmark = [pytest.mark.xdist_group("auth"), pytest.mark.timeout(2400)]

POLICY = """experiment = team

[registry]
model_name = churn

[approval]
approvers = bob, carol
four_eyes = true
auto_approve = true
automation_user = pipeline
"""
PASSWORDS = {name: f"{name}-secret-password-0123" for name in ("alice", "bob", "carol", "mallory", "pipeline", "dana")}
HANG = 900  # seconds: a guard against hanging, never an assertion on speed


class Team:
    "The module's authenticated server: its URL, folder, project and users."

    def __init__(self, url: str, folder: Path, project: Path, backend: str):
        self.url, self.folder, self.project, self.backend = url, folder, project, backend

    def env(self, user: str | None, **extra: str) -> dict[str, str]:
        "A subprocess environment logged in as `user` (None: no credentials), pointed at the server; `extra` last."
        env = clean_env(MLFLOW_TRACKING_URI=self.url)
        for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
            env.pop(k, None)
        if user is not None:
            env |= {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": PASSWORDS[user]}
        return env | extra

    def cli(self, *args: str, user: str | None, code: int = 0, stdin: str | None = None,
            **extra: str) -> subprocess.CompletedProcess:
        "`mlops-wb ARGS` as `user`, in the project; asserts its exit code."
        r = subprocess.run([str(BIN / "mlops-wb"), *args], cwd=self.project, env=self.env(user, **extra),
                           input=stdin, capture_output=True, text=True, timeout=HANG)
        assert r.returncode == code, (args, r.returncode, r.stdout, r.stderr[-3000:])
        return r


@pytest.fixture(scope="module")
def team(postgres, tmp_path_factory):
    "`mlops-wb server start --auth` on the session's PostgreSQL, with its users; stopped at the end."
    project = tmp_path_factory.mktemp("auth_project")
    folder = project / "server"
    port = free_port()
    (project / "settings.ini").write_text(f"[tracking]\nuri = http://127.0.0.1:{port}\n" + POLICY)  # as the README says
    t = Team(f"http://127.0.0.1:{port}", folder, project, postgres.uri)
    r = t.cli("server", "start", "--auth", "--port", str(port), "--folder", str(folder), user=None,
              MLOPS_WB_BACKEND_URI=postgres.uri, MLOPS_WB_SERVER_WAIT="900")
    assert "auth:          on" in r.stdout and "policy:        [approval] of" in r.stdout, r.stdout
    assert postgres.password not in r.stdout + r.stderr
    try:
        # users as an admin adds them: on stdin, from the environment, and several at once
        r = t.cli("server", "add-user", "alice", "--folder", str(folder), user=None, stdin=PASSWORDS["alice"] + "\n")
        assert r.stdout.startswith("Created 'alice' as a user of the server"), r.stdout
        t.cli("server", "add-user", "bob", "--folder", str(folder), user=None, MLOPS_WB_NEW_PASSWORD=PASSWORDS["bob"])
        from mlops_wb.server import add_users

        others = {n: PASSWORDS[n] for n in ("carol", "mallory", "pipeline", "dana")}
        assert add_users(others, admins=("dana",), folder=folder) == {n: "created" for n in others}
        yield t
    finally:
        t.cli("server", "stop", "--folder", str(folder), user=None)


@contextmanager
def login(user: str | None, password: str | None = None):
    "This process, logged in as `user` (MLflow reads the credentials at each request)."
    saved = {k: os.environ.pop(k, None) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    if user is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"] = user
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password or PASSWORDS[user]
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


@pytest.fixture
def here(team, monkeypatch):
    "This test process in the team's project (its settings.ini), with no declared user and no audit key."
    for var in ("MLOPS_WB_USER", "MLOPS_WB_SETTINGS", "MLFLOW_TRACKING_URI", "MLOPS_WB_AUDIT_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(team.project)
    return team


def mlflow_client(url: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=url, registry_uri=url)


def candidate(url: str, experiment: str, *, gates: bool = True) -> str:
    "As the logged-in user: a run with a logged model and a passing gate report; its run id."
    c = mlflow_client(url)
    exp = c.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else c.create_experiment(experiment)
    run_id = c.create_run(exp_id).info.run_id
    c.create_logged_model(exp_id, name="model", source_run_id=run_id)
    if gates:
        log_gates(url, run_id)
    return run_id


def pending(url: str, model: str, user: str, experiment: str = "alice-runs") -> str:
    "As `user`: register a candidate of `model` and request its approval; the version."
    from mlops_wb.registry import register, request_approval

    with login(user):
        v = register(f"runs:/{candidate(url, experiment)}/model", model, comment=f"candidate of {user}").version
        request_approval(model, v, comment="please review")
    return v


def refused(call, cls=None) -> str:
    "The message of the error `call()` raises (of class `cls`, by default any mlops_wb error)."
    from mlops_wb.core import MlopsWbError

    with pytest.raises(cls or MlopsWbError) as e:
        call()
    return str(e.value)


# --- logins ----------------------------------------------------------------------------------------------------------

def test_a_wrong_password_no_login_and_a_token_each_give_one_clear_line(here):
    from mlops_wb.registry import approve

    url = here.url
    no_login = (f"The MLflow server at {url} needs a login: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
                "(ask its admin for an account: mlops-wb server add-user NAME).")
    wrong = (f"The MLflow server at {url} did not accept the password of 'bob' (MLFLOW_TRACKING_PASSWORD): check it, "
             "or ask its admin to reset it (mlops-wb server add-user bob --update).")
    with login("bob", "not-bobs-password-0123"):
        assert refused(lambda: approve("churn", 1, comment="x")) == wrong
    with login(None):
        assert refused(lambda: approve("churn", 1, comment="x")) == no_login
    # the console script, reading through MLflow's own client, says the same in one line
    assert here.cli("status", user=None, code=1).stderr.strip() == f"Error: {no_login}"
    r = here.cli("status", user="bob", code=1, MLFLOW_TRACKING_PASSWORD="not-bobs-password-0123")
    assert r.stderr.strip() == f"Error: {wrong}"
    # a token instead of a login: the server's own 401, at once (MLflow alone would answer 500 and retry for minutes)
    r = here.cli("approve", "churn", "1", "-c", "x", user=None, code=1, MLFLOW_TRACKING_TOKEN="a-token")
    assert r.stderr.strip() == ("Error: This MLflow server takes MLflow basic auth (MLFLOW_TRACKING_USERNAME and "
                                "MLFLOW_TRACKING_PASSWORD), not a token: unset MLFLOW_TRACKING_TOKEN.")
    # adding a user twice is refused; the admin sets a new password with --update
    r = here.cli("server", "add-user", "bob", "--folder", str(here.folder), user=None, code=1,
                 MLOPS_WB_NEW_PASSWORD="another-password-0123")
    assert "The user 'bob' exists on this server already. To set a new password (and the admin flag), add --update." \
        in r.stderr
    assert "another-password-0123" not in r.stdout + r.stderr


# --- identity and policy -----------------------------------------------------------------------------------------

def test_alice_cannot_approve_her_own_version_by_any_route(here, monkeypatch):
    from mlops_wb.core import get_client
    from mlops_wb.registry import ApprovalPolicy, approve, history, model_state, promote, whoami, workflow_server
    from mlops_wb.widgets import DeploymentApproval

    url = here.url
    v = pending(url, "churn", "alice")
    not_listed = (f"'alice' may not approve churn v{v}: only the listed approvers may (bob, carol). Ask one of them, "
                  "or have your name added to [approval] approvers.")
    with login("alice"):
        assert refused(lambda: approve("churn", v, comment="mine")) == not_listed
        assert refused(lambda: approve("churn", v, approver="bob", comment="mine")) == (
            "approve: the mlops_wb server acts as the user you logged in as, 'alice'; the name 'bob' (from the "
            "'approver' argument) cannot act in their place. Drop it, or log in as that user.")
        monkeypatch.setenv("MLOPS_WB_USER", "bob")
        assert "the name 'bob' (from $MLOPS_WB_USER) cannot act in their place" in refused(
            lambda: approve("churn", v, comment="mine"))
        monkeypatch.delenv("MLOPS_WB_USER")
        assert refused(lambda: approve("churn", v, comment="mine", policy=ApprovalPolicy(("alice",), False))) == (
            f"The policy passed to approve is looser than the [approval] policy of {here.project / 'settings.ini'}: "
            "it lists approvers the settings do not (alice); it turns off four_eyes. An argument can only tighten the "
            "policy, never loosen it.")
        same = ApprovalPolicy(("bob", "carol"), True, True, "pipeline")  # the server's own: applies, changes nothing
        assert refused(lambda: approve("churn", v, comment="mine", policy=same)) == not_listed
        assert "'alice' may not promote" in refused(lambda: promote("churn", v, comment="mine"))
        # the widget, its user trait set to an approver: nothing enabled, and acting is refused
        server_policy = workflow_server(get_client(url)).policy_sha256
        assert "the name 'bob' (from the 'user' argument) cannot act" in refused(
            lambda: whoami(user="bob", client=get_client(url)))
        w = DeploymentApproval("churn", version=v, user="bob", client=get_client(url))
        w._comment.value = "looks good to me"
        assert w._buttons["approve"].disabled and "cannot act in their place" in w._reasons.value, w._reasons.value
        w.act("approve")
        assert "cannot act in their place" in w.status_text, w.status_text
    assert here.cli("whoami", user="alice").stdout.strip() == (
        f"You act as 'alice' on the mlops_wb server at {url}: not an approver (policy {server_policy[:12]}).")
    r = here.cli("approve", "churn", v, "-c", "mine", "--user", "bob", user="alice", code=1, MLOPS_WB_USER="bob")
    assert r.stderr.strip().startswith("Error: approve: the mlops_wb server acts as the user you logged in as, 'alice'")
    # four eyes compare authenticated names: carol, an approver, cannot approve what she registered
    v2 = pending(url, "churn", "carol", experiment="carol-runs")  # alice's experiment is read-only to carol
    with login("carol"):
        assert refused(lambda: approve("churn", v2, comment="mine")) == (
            f"'carol' may not approve churn v{v2}: they registered it, and the four-eyes rule forbids approving your "
            "own work. Ask another approver.")
    # auto-approval is the automation identity's alone: mallory can neither approve nor pose as it
    with login("mallory"):
        assert refused(lambda: approve("churn", v, comment="gates passed")).startswith("'mallory' may not approve")
        assert "the name 'pipeline' (from the 'approver' argument) cannot act" in refused(
            lambda: approve("churn", v, approver="pipeline", comment="gates passed"))
    with login("bob"):
        st = model_state("churn", client=get_client(url))
        assert (st.versions[v].status, st.versions[v2].status) == ("pending", "pending")
        h = history("churn", client=get_client(url))
    denied = h[h["outcome"] == "denied"]
    assert denied[["actor", "auth", "login"]].values.tolist() == [
        ["alice", "authenticated", "alice"], ["alice", "authenticated", "alice"], ["alice", "authenticated", "alice"],
        ["carol", "authenticated", "carol"], ["mallory", "authenticated", "mallory"]]


def test_bob_approves_through_the_library_the_cli_and_the_widget(here):
    from mlflow.entities import ViewType

    from mlops_wb.core import get_client
    from mlops_wb.registry import approve, history, verify_audit, whoami, workflow_server
    from mlops_wb.widgets import DeploymentApproval

    url, model = here.url, "approved-by-bob"
    versions = [pending(url, model, "alice") for _ in range(3)]
    with login("bob"):
        client = get_client(url)
        server = workflow_server(client)
        me = whoami(client=client)  # what a user interface shows: who acts, under which policy
        assert (me["user"], me["how"], me["approver"], me["policy_sha256"]) == (
            "bob", "bob (authenticated by the mlops_wb server)", True, server.policy_sha256)
        rec = approve(model, versions[0], comment="reviewed in the library")
        assert (rec.actor, rec.auth, rec.login, rec.address, rec.outcome) == (
            "bob", "authenticated", "bob", "127.0.0.1", "ok")
        assert (rec.server, rec.policy, rec.key_id) == (server.server_id, server.policy_sha256, server.audit_key_id)
        assert rec.signature and json.loads(rec.evidence)["policy"]["approvers"] == ["bob", "carol"]
    r = here.cli("approve", model, versions[1], "-c", "reviewed on the command line", user="bob")
    assert f"approve {model} v{versions[1]} (pending -> approved) by bob." in r.stdout, r.stdout
    with login("bob"):
        w = DeploymentApproval(model, version=versions[2], user="bob", client=client)
        w._comment.value = "reviewed in the widget"
        assert not w._buttons["approve"].disabled, w._reasons.value
        w._buttons["approve"].click()
        assert w.status_text.startswith("Recorded #"), w.status_text
        w.version = versions[0]
        w._comment.value = "release"
        w._buttons["promote"].click()
        assert w.status_text.startswith("Recorded #"), w.status_text
        check = verify_audit(model, client=client)
        h = history(model, client=client)
    mc = mlflow_client(url)  # MLflow's own view, unauthenticated reads are refused: log in as a reader
    with login("mallory"):
        assert str(mc.get_model_version_by_alias(model, "champion").version) == versions[0]
        tags = {str(m.version): m.tags["mlops_wb.status"] for m in mc.search_model_versions(f"name = '{model}'")}
        audit = mc.get_experiment_by_name(f"mlops_wb-audit/{model}").experiment_id
        runs = mc.search_runs([audit], run_view_type=ViewType.ALL)
    assert tags == {versions[0]: "champion", versions[1]: "approved", versions[2]: "approved"}
    assert (check.ok, check.signatures, check.signed) == (True, "verified", len(runs)), check
    decided = h[h["action"].isin(["approve", "promote"])]
    assert decided[["actor", "auth", "outcome"]].values.tolist() == [["bob", "authenticated", "ok"]] * 4


# --- MLflow's own client -------------------------------------------------------------------------------------------

def test_direct_alias_and_tag_moves_are_refused_by_the_server(here):
    from mlflow.exceptions import MlflowException

    from mlops_wb.registry import approve, promote, verify_audit
    from mlops_wb.server import load_secrets

    url, model = here.url, "guarded"
    v = pending(url, model, "alice")
    w = pending(url, model, "alice")
    with login("bob"):
        approve(model, v, comment="ok")
        promote(model, v, comment="release")

    def denied(call) -> str:
        with pytest.raises(MlflowException) as e:
            call()
        assert e.value.error_code == "PERMISSION_DENIED", e.value
        return e.value.message.removeprefix("PERMISSION_DENIED: ")

    guard = "Only the mlops_wb server moves the aliases of registered models"
    with login("alice"):
        c = mlflow_client(url)
        audit = c.get_experiment_by_name(f"mlops_wb-audit/{model}").experiment_id
        record = c.search_runs([audit], max_results=1)[0].info.run_id
        assert denied(lambda: c.set_registered_model_alias(model, "champion", w)).startswith(guard)
        assert denied(lambda: c.set_registered_model_alias(model, "mine", w)).startswith(guard)
        assert "(refused: 'mlops_wb.status' of 'guarded')" in denied(
            lambda: c.set_model_version_tag(model, w, "mlops_wb.status", "approved"))
        denied(lambda: c.delete_model_version_tag(model, v, "mlops_wb.status"))
        denied(lambda: c.set_registered_model_tag(model, "mlops_wb.audit.head", "1:forged"))
        denied(lambda: c.create_model_version(model, "s3://x/model", tags={"mlops_wb.status": "approved"}))
        assert "is under the mlops_wb approval workflow" in denied(lambda: c.create_model_version(model, "s3://x/m"))
        denied(lambda: c.set_tag(record, "mlops_wb.audit.comment", "rewritten"))
        denied(lambda: c.delete_run(record))
        assert "hold mlops_wb's audit trails and locks" in denied(lambda: c.create_experiment("mlops_wb-audit/evil"))
        c.set_model_version_tag(model, w, "note", "her own tag, allowed")  # the registrant may edit the rest
    with login("mallory"):  # no grant at all: MLflow's own permissions refuse first
        assert "Permission denied" in denied(lambda: mlflow_client(url).set_registered_model_alias(model, "champion", w))
        denied(lambda: mlflow_client(url).set_model_version_tag(model, w, "mlops_wb.status", "champion"))
    with login("dana"):  # an MLflow admin skips MLflow's checks, not the guard
        assert denied(lambda: mlflow_client(url).set_registered_model_alias(model, "champion", w)).startswith(guard)
    secrets = load_secrets(here.folder)
    with login(secrets.service_user, secrets.service_password):  # the server's own account is the exception
        sc = mlflow_client(url)
        sc.create_registered_model("scratch")
        sc.create_model_version("scratch", "s3://x/model")
        sc.set_registered_model_alias("scratch", "any", "1")
    with login("bob"):
        assert verify_audit(model, client=mlflow_client(url)).ok
        assert {a: str(x) for a, x in mlflow_client(url).get_registered_model(model).aliases.items()} == {"champion": v}


def test_registering_needs_read_access_to_the_run(here):
    from mlflow.server import get_app_client

    from mlops_wb.registry import register
    from mlops_wb.server import load_secrets

    with login("bob"):
        run_id = candidate(here.url, "bob-private", gates=False)
        exp_id = mlflow_client(here.url).get_experiment_by_name("bob-private").experiment_id
    secrets = load_secrets(here.folder)
    with login(secrets.service_user, secrets.service_password):
        get_app_client("basic-auth", tracking_uri=here.url).grant_user_permission("alice", "experiment", exp_id,
                                                                                  "DENY")
    with login("alice"):
        assert refused(lambda: register(f"runs:/{run_id}/model", "borrowed")) == (
            f"'alice' may not register a model of run {run_id}: they cannot read its experiment ({exp_id}). Ask its "
            "owner for access.")
    with login("carol"):  # READ by default: carol may
        assert register(f"runs:/{run_id}/model", "borrowed").actor == "carol"


# --- four processes race ---------------------------------------------------------------------------------------------

RACER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path

    from mlops_wb.core import ApprovalError, get_client
    from mlops_wb.registry import approve, promote

    url, model, pending, mine, champion, folder, i = sys.argv[1:8]
    folder, out = Path(folder), {}
    client = get_client(url)

    def barrier(step):
        (folder / f"{step}-{i}").touch()
        deadline = time.time() + 900
        while len(list(folder.glob(f"{step}-*"))) < 4:
            if time.time() > deadline:
                raise SystemExit(f"barrier {step} never filled")
            time.sleep(0.02)

    barrier("ready")
    for step, call in (("approve", lambda: approve(model, pending, comment=f"race {i}", client=client)),
                       ("promote", lambda: promote(model, mine, comment=f"race {i}", expected_champion=champion,
                                                   client=client))):
        barrier(step)
        try:
            out[step] = call().seq
        except ApprovalError as e:
            out[step] = str(e)
    print(json.dumps(out))
""")


def test_four_processes_racing_approvals_leave_one_champion_and_a_signed_trail(here, tmp_path):
    from mlops_wb.core import get_client
    from mlops_wb.registry import approve, history, promote, verify_audit

    url, model = here.url, "raced"
    versions = [pending(url, model, "alice") for _ in range(6)]  # v1 stays pending; v2..v6 approved, v2 champion
    with login("bob"):
        for v in versions[1:]:
            approve(model, v, comment="approved before the race")
        promote(model, versions[1], comment="the champion before the race")
    racers = ["bob", "carol", "bob", "carol"]
    procs = [subprocess.Popen([sys.executable, "-c", RACER, url, model, versions[0], versions[2 + i], versions[1],
                               str(tmp_path), str(i)], cwd=here.project, env=here.env(user), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
             for i, user in enumerate(racers)]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=HANG)
            assert p.returncode == 0, err[-4000:]
            outs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    approvals = [o["approve"] for o in outs]
    assert sum(isinstance(a, int) for a in approvals) == 1, approvals
    assert sorted(a for a in approvals if isinstance(a, str)) == [
        f"{model} v{versions[0]} is approved; only a version that is pending can be approved. It is already "
        "approved."] * 3
    promotions = [o["promote"] for o in outs]
    assert sum(isinstance(p, int) for p in promotions) == 1, promotions
    winner = versions[2 + next(i for i, p in enumerate(promotions) if isinstance(p, int))]
    assert sorted(p for p in promotions if isinstance(p, str)) == [
        f"The champion of {model} is v{winner}, not v{versions[1]}: it changed since you looked. Reload and decide "
        "again."] * 3
    with login("mallory"):  # checked with MLflow's own client, as a reader
        mc = mlflow_client(url)
        aliases = {a: str(v) for a, v in mc.get_registered_model(model).aliases.items()}
        tags = {str(m.version): m.tags["mlops_wb.status"] for m in mc.search_model_versions(f"name = '{model}'")}
    assert aliases == {"champion": winner}
    assert [v for v, t in tags.items() if t == "champion"] == [winner], tags
    with login("bob"):
        check = verify_audit(model, client=get_client(url))
        h = history(model, client=get_client(url))
    assert h["seq"].tolist() == list(range(1, len(h) + 1))
    race = h.iloc[-8:]
    assert sorted(race["outcome"]) == ["denied"] * 6 + ["ok"] * 2
    assert set(race["actor"]) == {"bob", "carol"} and (race["auth"] == "authenticated").all()
    assert (check.ok, check.signatures, check.signed, check.records) == (True, "verified", len(h), len(h)), check


# --- an expired server ---------------------------------------------------------------------------------------------

def test_zz_an_expired_server_gives_one_clear_line(here, postgres, tmp_path):
    """The server that keeps a trail is gone: replaced by a plain MLflow server on the same database, its signing key
    replaced, or stopped. Each refuses the transition in one line; none runs it anywhere else. (Last in the module: it
    stops the server.)"""
    from mlflow import MlflowClient

    from mlops_wb.core import get_client
    from mlops_wb.registry import Actor, ApprovalPolicy, Identity, approve, perform, workflow_server
    from mlops_wb.server import load_secrets, start_server, stop_server, with_driver

    url, model = here.url, "expiring"
    v = pending(url, model, "alice")
    server_id = load_secrets(here.folder).server_id
    # 1. a plain MLflow server on the same database, as after a restart without --auth
    plain = start_server(backend_uri=postgres.uri, port=free_port(), folder=tmp_path / "plain", wait=900)
    try:
        with login("bob"):
            assert workflow_server(get_client(plain.url)) is None
            assert refused(lambda: approve(model, v, comment="ok", client=get_client(plain.url))) == (
                f"The audit trail of {model!r} is kept by the mlops_wb server {server_id[:12]} (its record #2 was "
                f"written there), but this transition would run outside it, on {plain.url}. Send it to that server: "
                "point the tracking URI at its address (`mlops-wb server status` shows it).")
    finally:
        stop_server(tmp_path / "plain")
    # 2. a server whose audit key was replaced (a re-initialised folder) cannot continue the trail
    direct = MlflowClient(tracking_uri=with_driver(postgres.uri), registry_uri=with_driver(postgres.uri))
    other = Actor(Identity("bob", "authenticated", "bob"), ApprovalPolicy(("bob", "carol")), "a new server",
                  key="a-new-servers-audit-key-0123456789", server="e" * 32, fast=True)
    key_id = load_secrets(here.folder).key_id
    assert refused(lambda: perform("approve", {"name": model, "version": v, "comment": "ok"}, actor=other,
                                   client=direct)).startswith(
        f"The audit trail of {model!r} is signed with key {key_id} (its record #2), by the mlops_wb server "
        f"{server_id[:12]}; this process holds another key")
    # 3. the server stopped: one line, at once, nothing run here
    here.cli("server", "stop", "--folder", str(here.folder), user=None)
    started = time.time()
    with login("bob"):
        assert refused(lambda: approve(model, v, comment="ok", client=get_client(url))) == (
            f"The mlops_wb server at {url} is not answering (connection refused): it was stopped, or is restarting; "
            "nothing was changed; try again once it runs (mlops-wb server status tells).")
    assert time.time() - started < 120  # never MLflow's minutes of retries (a guard, generous on a busy machine)
