"""The workbench at team scale on one real `mlflow server` backed by PostgreSQL.

Four processes log runs and race through the approval workflow at once, the end-to-end demo runs against the server,
the server is killed (SIGKILL) while a pipeline notebook runs and comes back on the same port, and a sweep runs on a
real Dask cluster. Everything is checked afterwards with MLflow's own client, through the server.
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
from pathlib import Path

import pytest

from conftest import BIN, clean_env, free_port, log_gates, log_models
from team.procs import group_processes, port_free

warnings.filterwarnings("ignore")

# meant to keep the module on one xdist worker; the tests stay correct when split, as every worker that runs some of
# them starts its own PostgreSQL and server, and each test uses names of its own
pytestmark = pytest.mark.xdist_group("team")

N = 4  # racing worker processes
MODEL = "team_race_model"
RUNS_EXPERIMENT = "team-race-runs"
AUDIT_KEY = "team-audit-key-for-the-race-test-0001"
HANG = 600  # seconds: a guard against hanging forever, never an assertion on speed


# --- processes and the shared server ---------------------------------------------------------------------------------

def wait_for(what: str, ready, *, proc: subprocess.Popen | None = None, logs: tuple[Path, ...] = ()) -> None:
    "Poll `ready()` until it holds; fail (with the logs) if `proc` exits first or nothing happens for HANG seconds."
    deadline = time.time() + HANG
    while not ready():
        if (proc is not None and proc.poll() is not None) or time.time() > deadline:
            text = "\n".join(f"--- {p.name}:\n{p.read_text(errors='replace')[-4000:]}" for p in logs if p.exists())
            pytest.fail(f"{what} never happened (process exit code {proc.poll() if proc else None})\n{text}")
        time.sleep(0.05)


class TeamServer:
    "The module's MLflow server: started with `start_server` on PostgreSQL; can be SIGKILLed and started again."

    def __init__(self, backend_uri: str, folder: Path, port: int):
        self.backend_uri, self.folder, self.port = backend_uri, folder, port
        self.info = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        from mlops_wb.server import start_server

        self.info = start_server(backend_uri=self.backend_uri, port=self.port, folder=self.folder, wait=120)
        self.starts += 1
        assert self.info.healthy and self.info.url == self.url
        return self.info

    def kill(self) -> None:
        "SIGKILL the server's whole process group (its pgid is its pid) and wait until none of it is left."
        pgid = self.info.pid
        os.killpg(pgid, signal.SIGKILL)
        wait_for(f"the death of server process group {pgid}", lambda: not group_processes(pgid))
        wait_for(f"port {self.port} to close", lambda: port_free(self.port))


@pytest.fixture(scope="module")
def team_server(postgres, tmp_path_factory):
    "One `mlflow server` on the session's PostgreSQL for this module, with a state folder of its own."
    from mlops_wb.server import server_status, stop_server

    folder = tmp_path_factory.mktemp("team_scale") / "server"
    srv = TeamServer(postgres.uri, folder, free_port())
    srv.start()
    try:
        yield srv
    finally:
        stopped = stop_server(folder)
    assert stopped is not None and stopped.pid == srv.info.pid, "the server was not running at the end"
    wait_for("the server to let go of its port", lambda: not group_processes(stopped.pid) and port_free(srv.port))
    assert server_status(folder) is None
    assert not (folder / "server.json").exists() and not (folder / "server.pid").exists()
    log = (folder / "server.log").read_text(errors="replace")
    assert log.count("--- mlops-wb: starting the MLflow server") == srv.starts
    assert f"stopped the server (pid {stopped.pid})" in log


@pytest.fixture(autouse=True)
def _quiet_downloads(monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def mlflow_client(url: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=url, registry_uri=url)


# --- 1. four processes: runs and an approval race ---------------------------------------------------------------------

WORKER = textwrap.dedent("""
    import json, sys, threading, time
    from pathlib import Path

    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    from mlops_wb.core import ApprovalError
    from mlops_wb.registry import ApprovalPolicy, approve, model_state, promote, register, request_approval

    url, i, n, name, source_run, exp_id, folder = sys.argv[1:8]
    i, n, folder = int(i), int(n), Path(folder)
    me = f"ds{i}"
    policy = ApprovalPolicy(approvers=tuple(f"ds{k}" for k in range(n)))
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    done = threading.Event()
    logged, errors = [], []

    def log_runs():
        c = MlflowClient(tracking_uri=url, registry_uri=url)
        k = 0
        try:
            while not done.is_set() or k < 5:
                run_id = c.create_run(exp_id, run_name=f"{me}-{k}").info.run_id
                now = int(time.time() * 1000)
                c.log_batch(run_id, metrics=[Metric("k", k, now, 0), Metric("score", i + k / 100, now, 0)],
                            params=[Param("worker", me), Param("k", str(k)), Param("kind", "race")])
                c.set_terminated(run_id)
                logged.append(run_id)
                k += 1
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")

    def barrier(step):
        (folder / f"{step}-{i}").touch()
        deadline = time.time() + 600
        while len(list(folder.glob(f"{step}-*"))) < n:
            if time.time() > deadline:
                raise SystemExit(f"{me}: barrier {step} never filled")
            time.sleep(0.02)

    logger = threading.Thread(target=log_runs)
    logger.start()
    out = {"worker": me}
    try:
        barrier("start")
        mine = register(source_run, name, user=me, comment=f"candidate of {me}", client=client).version
        request_approval(name, mine, user=me, comment="please review", client=client)
        out["version"] = mine
        (folder / f"version-{i}.tmp").write_text(mine)
        (folder / f"version-{i}.tmp").rename(folder / f"version-{i}")
        barrier("requested")
        theirs = (folder / f"version-{(i + 1) % n}").read_text()
        approve(name, theirs, approver=me, comment=f"reviewed by {me}", client=client, policy=policy)
        out["approved"] = theirs
        barrier("approved")
        seen = model_state(name, client=client).snapshot.champion
        out["seen"] = seen
        barrier("seen")
        try:
            promote(name, theirs, approver=me, comment=f"race by {me}", expected_champion=seen, client=client,
                    policy=policy)
            out["promote"] = "ok"
        except ApprovalError as e:
            out["promote"] = str(e)
    finally:
        done.set()
        logger.join()
    out["runs"], out["errors"] = logged, errors
    print(json.dumps(out))
""")


def test_four_processes_log_runs_and_race_approvals(team_server, project, tmp_path, monkeypatch):
    from mlflow.entities import ViewType

    from mlops_wb.registry import (
        LOCK_PREFIX,
        ApprovalPolicy,
        approve,
        history,
        promote,
        register,
        request_approval,
        verify_audit,
    )

    for var in ("MLFLOW_TRACKING_URI", "MLOPS_WB_SETTINGS", "MLOPS_WB_USER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLOPS_WB_AUDIT_KEY", AUDIT_KEY)  # the team signs its trail: every process has the key
    monkeypatch.chdir(project)  # the project's settings.ini, not the repository's
    url = team_server.url
    users = tuple(f"ds{k}" for k in range(N))
    policy = ApprovalPolicy(approvers=users)

    # N + 1 models with passing gate reports; model 0 becomes champion (four eyes: ds0 asks, ds1 decides)
    models = log_models(url, N + 1, experiment="team-race-train")
    for run_id in models:
        log_gates(url, run_id)
    client = mlflow_client(url)
    assert register(models[0], MODEL, user="ds0", client=client).version == "1"
    request_approval(MODEL, 1, user="ds0", comment="baseline", client=client)
    approve(MODEL, 1, approver="ds1", comment="baseline looks fine", client=client, policy=policy)
    promote(MODEL, 1, approver="ds1", comment="first release", client=client, policy=policy)
    setup_records = 4
    runs_exp = client.create_experiment(RUNS_EXPERIMENT)

    barriers = tmp_path / "barriers"
    barriers.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, str(i), str(N), MODEL, models[i + 1], runs_exp,
                               str(barriers)], cwd=project, env=clean_env(MLOPS_WB_AUDIT_KEY=AUDIT_KEY), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
             for i in range(N)]
    reports = []
    try:
        for i, p in enumerate(procs):
            out, err = p.communicate(timeout=HANG)
            assert p.returncode == 0, f"worker ds{i} failed ({p.returncode}):\n{out[-2000:]}\n{err[-5000:]}"
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    # checked with a fresh MLflow client, through the server
    mc = mlflow_client(url)
    assert [r["errors"] for r in reports] == [[]] * N, [r["errors"] for r in reports]
    assert all(len(r["runs"]) >= 5 for r in reports), [len(r["runs"]) for r in reports]
    written = {run_id: (i, k) for i, r in enumerate(reports) for k, run_id in enumerate(r["runs"])}
    stored, token = [], None
    while True:
        page = mc.search_runs([runs_exp], run_view_type=ViewType.ALL, max_results=1000, page_token=token)
        stored += list(page)
        token = page.token
        if not token:
            break
    found = 0
    for run in stored:
        if run.info.run_id not in written:
            continue
        i, k = written[run.info.run_id]
        assert run.info.status == "FINISHED", (run.info.run_id, run.info.status)
        assert run.data.params == {"worker": f"ds{i}", "k": str(k), "kind": "race"}, run.data.params
        assert run.data.metrics == {"k": k, "score": i + k / 100}, run.data.metrics
        found += 1
    print(f"\nruns: {len(written)} written by {N} workers ({[len(r['runs']) for r in reports]}), {found} found "
          f"FINISHED with their params and metrics, {len(stored)} in {RUNS_EXPERIMENT!r}")
    assert found == len(written) == len(stored)

    # the race: every worker registered, requested and approved; exactly one promotion won
    versions = sorted(r["version"] for r in reports)
    assert versions == [str(v) for v in range(2, N + 2)], versions
    assert [r["approved"] for r in reports] == [reports[(i + 1) % N]["version"] for i in range(N)]
    assert [r["seen"] for r in reports] == ["1"] * N
    outcomes = [r["promote"] for r in reports]
    assert outcomes.count("ok") == 1, outcomes
    winner = next(r["approved"] for r in reports if r["promote"] == "ok")
    refusal = (f"The champion of {MODEL} is v{winner}, not v1: it changed since you looked. Reload and decide "
               "again.")
    assert sorted(o for o in outcomes if o != "ok") == [refusal] * (N - 1), outcomes
    versions = mc.search_model_versions(f"name = '{MODEL}'")
    assert len(versions) == N + 1
    tags = {str(mv.version): mv.tags.get("mlops_wb.status") for mv in versions}
    assert [v for v, t in tags.items() if t == "champion"] == [winner], tags
    assert tags == {"1": "retired", **{str(v): "approved" for v in range(2, N + 2) if str(v) != winner},
                    winner: "champion"}
    aliases = {a: str(v) for a, v in mc.get_registered_model(MODEL).aliases.items()}
    assert aliases == {"champion": winner}
    assert str(mc.get_model_version_by_alias(MODEL, "champion").version) == winner

    # the audit trail: setup, then per worker register, request, approve and one promotion (ok or denied)
    expected = setup_records + 4 * N
    h = history(MODEL, client=mc)
    audit_runs = mc.search_runs([mc.get_experiment_by_name(f"mlops_wb-audit/{MODEL}").experiment_id],
                                run_view_type=ViewType.ALL, max_results=1000)
    print(f"audit records: {expected} expected, {len(h)} in the history, {len(audit_runs)} audit runs in the store")
    assert len(h) == len(audit_runs) == expected
    assert h["seq"].tolist() == list(range(1, expected + 1))
    assert sorted(int(r.data.tags["mlops_wb.audit.seq"]) for r in audit_runs) == list(range(1, expected + 1))
    assert h["action"].value_counts().to_dict() == {a: N + 1 for a in ("register", "request", "approve", "promote")}
    race = h[h["seq"] > setup_records]
    promos = race[race["action"] == "promote"]
    assert sorted(promos["outcome"]) == ["denied"] * (N - 1) + ["ok"]
    assert promos[promos["outcome"] == "ok"]["version"].tolist() == [winner]
    assert (promos[promos["outcome"] == "denied"]["reason"] == refusal).all()
    assert (race[race["action"] != "promote"]["outcome"] == "ok").all()
    approvals = race[race["action"] == "approve"]
    registrants = dict(zip(race[race["action"] == "register"]["version"], race[race["action"] == "register"]["actor"],
                           strict=True))
    assert all(registrants[v] != a for v, a in zip(approvals["version"], approvals["actor"], strict=True))  # four eyes
    check = verify_audit(MODEL, client=mc, key=AUDIT_KEY)
    assert check.ok and check.records == expected and (check.signed, check.signatures) == (expected, "verified"), check

    locks = [e.name for e in mc.search_experiments(view_type=ViewType.ACTIVE_ONLY)
             if e.name.startswith(LOCK_PREFIX)]
    assert locks == [], locks


# --- 2. the end-to-end demo on the server ---------------------------------------------------------------------------

def test_demo_pipeline_on_the_shared_server(team_server, tmp_path):
    from mlops_wb.registry import history, model_state, verify_audit

    url = team_server.url
    root = tmp_path / "fresh-project"
    root.mkdir()
    r = subprocess.run([str(BIN / "mlops-wb"), "demo", "--uri", url], cwd=root,
                       env=clean_env(MLOPS_WB_USER="data-scientist"), capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, f"mlops-wb demo failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    out = r.stdout
    assert "mlops_wb demo finished in" in out and f"on {url}" in out, out
    assert f"note: wrote {root / 'settings.ini'}" in out, out  # a fresh project: the demo wrote its own settings
    assert "pipeline demo (finished" in out and "pipeline retrain (finished" in out, out
    assert "monitor: ALERT, the batch drifted" in out
    assert not (root / ".mlops_wb" / "mlflow.db").exists()  # nothing went to an embedded store

    mc = mlflow_client(url)
    exp = mc.get_experiment_by_name("mlops_wb pipelines")
    runs = mc.search_runs([exp.experiment_id], max_results=1000)
    parents = [x for x in runs if x.data.tags.get("mlops_wb.kind") == "pipeline"]
    assert sorted(x.data.tags["mlops_wb.pipeline"] for x in parents) == ["demo", "retrain"]
    assert [x.info.status for x in parents] == ["FINISHED"] * 2
    by_step: dict[str, list] = {}
    for x in runs:
        if "mlops_wb.step" in x.data.tags:
            by_step.setdefault(x.data.tags["mlops_wb.step"], []).append(x)
    assert set(by_step) == {"ingest", "train", "evaluate", "register", "monitor"}
    assert {k: len(v) for k, v in by_step.items()} == {"ingest": 1, "train": 2, "evaluate": 2, "register": 2,
                                                        "monitor": 1}
    downloads = tmp_path / "downloads"
    for step, step_runs in by_step.items():
        for x in step_runs:
            assert x.info.status == "FINISHED", (step, x.data.tags.get("mlops_wb.error"))
            assert x.data.tags["mlflow.parentRunId"] in {p.info.run_id for p in parents}
            arts = [a.path for a in mc.list_artifacts(x.info.run_id, "notebook")]
            assert len(arts) == 1 and arts[0].endswith(".ipynb"), (step, arts)
            # the executed notebook, downloaded through the server
            nb = json.loads(Path(mc.download_artifacts(x.info.run_id, arts[0], str(downloads / x.info.run_id)))
                            .read_text())
            code = [c for c in nb["cells"] if c["cell_type"] == "code"]
            assert code and all(c["execution_count"] for c in code), step
            assert "papermill" in nb["metadata"]
    monitor = by_step["monitor"][0]
    assert monitor.data.params["alert"] == "True" and monitor.data.metrics["drift_share"] > 0.5
    # the artifacts live in the server's artifact store, which it proxies
    assert len(list((team_server.folder / "artifacts").rglob("*.ipynb"))) >= 8

    # the registry: v1 approved by the demo policy and champion; the retrained v2 waits for a person
    names = {x.data.tags["mlops_wb.record.model_name"] for x in by_step["register"]}  # a parameter too: a tag
    assert len(names) == 1 and f"registered model {min(names)}:" in out, (names, out)
    name = names.pop()
    assert str(mc.get_model_version_by_alias(name, "champion").version) == "1"
    assert mc.get_model_version(name, "2").tags["mlops_wb.status"] == "pending"
    assert {v: i.status for v, i in model_state(name, client=mc).versions.items()} == {"1": "champion",
                                                                                       "2": "pending"}
    h = history(name, client=mc)
    assert h["action"].tolist() == ["register", "request", "approve", "promote", "register", "request"]
    assert (h["outcome"] == "ok").all()
    assert h["actor"].tolist()[2:4] == ["demo-pipeline"] * 2  # the demo's automation identity, not a person
    assert verify_audit(name, client=mc).ok
    train = mc.get_experiment_by_name("mlops_wb")
    trials = mc.search_runs([train.experiment_id], filter_string="tags.mlflow.parentRunId LIKE '%'")
    assert len(trials) >= 8  # two searches of 4 trials
    assert all(t.info.status == "FINISHED" for t in trials)

    # comparison and drift logging, as the widgets do them, straight from the server
    import numpy as np
    import pandas as pd

    from mlops_wb.drift import compute_drift
    from mlops_wb.tracking import best_run, compare_runs, load_runs

    frame = load_runs("mlops_wb", client=mc)
    assert {t.info.run_id for t in trials} <= set(frame["run_id"])
    siblings: dict[str, list] = {}  # the cross-validated trials of one search share a parent and their metrics
    for t in trials:
        if any(k.startswith("cv_") for k in t.data.metrics):
            siblings.setdefault(t.data.tags["mlflow.parentRunId"], []).append(t)
    search = max(siblings.values(), key=len)
    shared = sorted(set.intersection(*(set(t.data.metrics) for t in search)))
    assert len(search) >= 4 and shared, [t.data.metrics for t in search]
    comparison = compare_runs([t.info.run_id for t in search[:4]], client=mc)
    assert len(comparison.metrics) == 4 and set(shared) <= set(comparison.metrics.columns)
    assert not comparison.histories.empty
    best = best_run("mlops_wb", metric=shared[0], mode="auto", where="tags.mlflow.parentRunId LIKE '%'", client=mc)
    assert best["run_id"] in comparison.runs["run_id"].tolist() or best["run_id"] in frame["run_id"].tolist()
    rng = np.random.default_rng(0)
    report = compute_drift(reference=pd.DataFrame({"x": rng.normal(size=3000)}),
                           current=pd.DataFrame({"x": rng.normal(1, size=2000)}))
    logged = report.log_to_mlflow(client=mc, experiment="team-drift")
    drift_run = mlflow_client(url).get_run(logged)
    assert drift_run.data.metrics["drift.x.wasserstein"] == pytest.approx(report["x"].wasserstein)


# --- 3. the server dies while a pipeline notebook runs ---------------------------------------------------------------

CELL_BEFORE = """\
import os
import time
from pathlib import Path

from mlflow import MlflowClient
from mlops_wb.pipelines import record

run_id = os.environ["MLOPS_WB_PIPELINE_RUN_ID"]
client = MlflowClient()  # MLFLOW_TRACKING_URI, set by the runner
client.log_metric(run_id, "logged_before", 1.0)
record("recorded_before", 1.5)"""
CELL_WAIT = "Path(marker).touch()\ntime.sleep(seconds)"
CELL_AFTER = """\
Path(after_marker).touch()
client.log_metric(run_id, "logged_after", 2.0)
record("recorded_after", 2.5)"""


def _start_runner(project: Path, url: str, experiment: str, tag: str, *, seconds: int, **extra_env: str):
    "`mlops-wb run` of the three-cell notebook, in its own process group; returns (proc, files)."
    from mlops_wb.pipelines import write_notebook

    nb = write_notebook(project / f"{tag}.ipynb", 'marker = ""\nafter_marker = ""\nseconds = 8', CELL_BEFORE,
                        CELL_WAIT, CELL_AFTER)
    files = {k: project / f"{tag}.{k}" for k in ("marker", "after", "stdout", "stderr")}
    files["output"] = project / f"{tag}-out.ipynb"
    with open(files["stdout"], "w") as stdout, open(files["stderr"], "w") as stderr:
        proc = subprocess.Popen(
            [str(BIN / "mlops-wb"), "run", str(nb), "--uri", url, "-e", experiment, "-p", "marker",
             str(files["marker"]), "-p", "after_marker", str(files["after"]), "-p", "seconds", str(seconds),
             "--output", str(files["output"])],
            cwd=project, env=clean_env(**extra_env), start_new_session=True, stdout=stdout, stderr=stderr)
    return proc, files


def _finish_runner(proc: subprocess.Popen, files: dict[str, Path]) -> str:
    "Wait for the runner to exit; return its exit code and output, for messages."
    try:
        proc.wait(timeout=HANG)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return (f"runner exit code {proc.returncode}\nstdout:\n{files['stdout'].read_text()[-3000:]}\n"
            f"stderr:\n{files['stderr'].read_text()[-5000:]}")


def _the_run(mc, experiment: str):
    (run,) = mc.search_runs([mc.get_experiment_by_name(experiment).experiment_id])
    return run


def _check_finished(mc, run, name: str, tmp_path: Path) -> None:
    "Every value logged from the kernel or recorded is in the run; the executed notebook downloads through the server."
    assert run.data.metrics["logged_before"] == 1.0 and run.data.metrics["logged_after"] == 2.0
    assert run.data.metrics["recorded_before"] == 1.5 and run.data.metrics["recorded_after"] == 2.5
    assert [a.path for a in mc.list_artifacts(run.info.run_id, "notebook")] == [f"notebook/{name}"]
    nb = json.loads(Path(mc.download_artifacts(run.info.run_id, f"notebook/{name}", str(tmp_path / "dl")))
                    .read_text())
    assert [c["execution_count"] for c in nb["cells"] if c["cell_type"] == "code"] == [1, 2, 3, 4, 5]


def test_server_killed_mid_pipeline_run(team_server, project, tmp_path):
    url, experiment = team_server.url, "team-fault-killed"
    # MLflow's client retries with backoff (here up to 10 times, about 8 minutes in all): the run rides out a restart
    proc, files = _start_runner(project, url, experiment, "killed", seconds=8, MLFLOW_HTTP_REQUEST_MAX_RETRIES="10",
                                MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="2")
    try:
        wait_for("the notebook's marker", files["marker"].exists, proc=proc,
                 logs=(files["stdout"], files["stderr"]))
        team_server.kill()  # SIGKILL, while the kernel sleeps between its logging cells
        time.sleep(3)
        team_server.start()  # same port, backend and state folder: the stale state must not stop it
    finally:
        output = _finish_runner(proc, files)
    mc = mlflow_client(url)
    run = _the_run(mc, experiment)
    print(f"\nserver killed mid-run: the run ended {run.info.status}; {output.splitlines()[0]}")
    # the kernel slept through the outage, and every later call was retried until the server was back: nothing lost
    assert (run.info.status, proc.returncode) == ("FINISHED", 0), f"the run ended {run.info.status}\n{output}"
    assert files["output"].exists()
    _check_finished(mc, run, files["output"].name, tmp_path)


def test_server_down_while_the_last_cell_logs(team_server, project, tmp_path):
    url, experiment = team_server.url, "team-fault-down"
    # no HTTP retries: the notebook's last cell fails at once while the server is down
    proc, files = _start_runner(project, url, experiment, "down", seconds=4, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    try:
        wait_for("the notebook's marker", files["marker"].exists, proc=proc,
                 logs=(files["stdout"], files["stderr"]))
        team_server.kill()
        wait_for("the notebook's last cell", files["after"].exists, proc=proc,
                 logs=(files["stdout"], files["stderr"]))
        time.sleep(3)  # the cell logs to a dead server; the server comes back a few seconds later
        team_server.start()
    finally:
        output = _finish_runner(proc, files)
    mc = mlflow_client(url)
    run = _the_run(mc, experiment)
    print(f"\nserver down during the last cell: the run ended {run.info.status}; {output.splitlines()[0]}")
    assert files["output"].exists(), "the executed notebook was not kept locally"
    executed = json.loads(files["output"].read_text())
    last = executed["cells"][-1]
    assert "".join(last["source"]).startswith("Path(after_marker).touch()")
    assert run.info.status != "RUNNING", (
        f"the runner exited and left run {run.info.run_id} RUNNING on the server (it could not record the end of "
        f"the run while the server was down, and did not retry once it was back)\n{output}")
    # without retries the last cell's logging call fails while the server is down: the cell fails, so the run is
    # FAILED, recorded once the server is back, with the cell's error and the executed notebook
    assert (run.info.status, proc.returncode) == ("FAILED", 1), f"the run ended {run.info.status}\n{output}"
    error = run.data.tags.get("mlops_wb.error", "")
    assert "failed in cell" in error and "Connection" in error, error
    assert any(o.get("output_type") == "error" for o in last.get("outputs", []))


# --- 4. a sweep on a Dask cluster ------------------------------------------------------------------------------------

def test_sweep_on_a_dask_cluster_tracked_on_the_shared_server(team_server, project, monkeypatch):
    from dask.distributed import Client, LocalCluster

    from mlops_wb.pipelines.orchestrate import sweep
    from mlops_wb.pipelines import write_notebook

    for var in ("MLFLOW_TRACKING_URI", "MLOPS_WB_SETTINGS", "MLOPS_WB_USER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(project)  # the Dask workers start here, and keep their executed notebooks in the project
    url, experiment = team_server.url, "team-scale-sweep"
    nb = write_notebook(project / "point.ipynb", 'alpha = 0.0\nlabel = "none"',
                        "import os\nfrom mlops_wb.pipelines import record\n"
                        "record('kernel_parent_pid', os.getppid())\nrecord('score', alpha * 10)")
    alphas = [0.1, 0.2, 0.3, 0.4]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as cluster, Client(cluster) as dask_client:
        worker_pids = set(dask_client.run(os.getpid).values())
        table = sweep(nb, {"alpha": alphas}, parameters={"label": "dask"}, scheduler=cluster.scheduler_address,
                      uri=url, experiment=experiment, progress=False)
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    assert table["status"].tolist() == ["FINISHED"] * 4, table.to_string()
    assert table["alpha"].tolist() == alphas

    mc = mlflow_client(url)
    parent = mc.get_run(table.attrs["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["mlops_wb.kind"] == "sweep"
    children = mc.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.info.run_id for c in children) == sorted(table["run_id"])
    assert sorted(float(c.data.params["alpha"]) for c in children) == alphas
    runners = set()
    for c in children:
        assert c.info.status == "FINISHED", c.data.tags.get("mlops_wb.error")
        assert c.data.params["label"] == "dask"
        assert c.data.metrics["score"] == pytest.approx(float(c.data.params["alpha"]) * 10)
        runner = int(c.data.tags["mlops_wb.runner.pid"])
        assert runner in worker_pids  # run_notebook ran in a Dask worker process...
        assert int(c.data.metrics["kernel_parent_pid"]) == runner  # ...which started the notebook's kernel
        runners.add(runner)
        assert [a.path for a in mc.list_artifacts(c.info.run_id, "notebook")] != []
    print(f"\nsweep: 4 points on Dask worker processes {sorted(runners)} (test process {os.getpid()})")
