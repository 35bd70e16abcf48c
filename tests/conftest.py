"""Shared fixtures: real MLflow stores (a migrated SQLite template, a real `mlflow server`) and a clean environment."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    "A free TCP port on 127.0.0.1."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_models(uri: str, n: int, *, experiment: str = "train") -> list[str]:
    "Log `n` logistic regressions of the breast-cancer data with plain MLflow; return their run ids."
    import mlflow
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    from mlops_wb.core import get_client

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    client = get_client(uri)
    exp = client.create_experiment(experiment) if uri.startswith("http") else client.create_experiment(
        experiment, artifact_location="file://" + uri[len("sqlite:///"):].rsplit("/", 1)[0] + "/artifacts/train")
    old = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    runs = []
    try:
        for i in range(n):
            with mlflow.start_run(experiment_id=exp) as r:
                mlflow.sklearn.log_model(LogisticRegression(C=10.0 ** (i - 2), max_iter=40).fit(X, y), name="model",
                                         pip_requirements=["scikit-learn"], serialization_format="cloudpickle")
            runs.append(r.info.run_id)
    finally:
        mlflow.set_tracking_uri(old)
    return runs


def log_gates(uri: str, run_id: str, passed: bool = True) -> None:
    "A gate report on `run_id`: a metric check that passes, and a fairness check that passes or fails."
    from mlops_wb.core import get_client
    from mlops_wb.gates import GateCheck, GateReport

    GateReport([GateCheck("min.roc_auc", "metric", True, 0.97, 0.9),
                GateCheck("fairness.gap", "fairness", passed, 0.05 if passed else 0.3, 0.1, "<=")],
               candidate=run_id).log_to_mlflow(run_id, client=get_client(uri))


def clean_env(**extra: str) -> dict[str, str]:
    "The current environment without variables that would point the workbench elsewhere."
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLOPS_WB_SETTINGS", "MLOPS_WB_USER",
                                                        "MLOPS_WB_AUDIT_KEY")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    "A migrated, empty MLflow SQLite store, created once per session (migrating costs seconds)."
    folder = tmp_path_factory.mktemp("template")
    db = folder / "mlflow.db"
    code = ("from mlflow import MlflowClient; "
            f"MlflowClient(tracking_uri='sqlite:///{db}').search_experiments()")
    subprocess.run([sys.executable, "-c", code], check=True, env=clean_env(), capture_output=True)
    return db


@pytest.fixture
def tracking_uri(sqlite_template, tmp_path) -> str:
    "A fresh SQLite tracking store of this test's own."
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(sqlite_template, db)
    return f"sqlite:///{db}"


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    "A real `mlflow server` on 127.0.0.1 with a SQLite backend; yields its URL and stops its process group after."
    folder = tmp_path_factory.mktemp("server")
    port = free_port()
    env = clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    log = open(folder / "server.log", "wb")
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder}/mlflow.db", "--artifacts-destination", str(folder / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("mlflow server did not start:\n" + (folder / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


DEMO_SETTINGS = """[tracking]
experiment = mlops_wb

[approval]
approvers = reviewer
four_eyes = true
# the demo: its pipeline identity approves its own candidates when every gate passed
auto_approve = true
automation_user = demo-pipeline
# the demo only: one person plays every role on one machine (records keep the login too)
allow_declared_user = true
"""


@pytest.fixture(scope="session")
def demo_project(tmp_path_factory) -> Path:
    "A project folder on which `mlops-wb demo` ran once (embedded store, v1 champion, v2 pending). Copy before changing."
    root = tmp_path_factory.mktemp("demo_project")
    reuse = os.environ.get("MLOPS_WB_TEST_DEMO_PROJECT")  # a developer's shortcut: a folder where the demo ran
    if reuse:
        shutil.copytree(reuse, root, dirs_exist_ok=True)
        return root
    (root / "settings.ini").write_text(DEMO_SETTINGS)
    r = subprocess.run([str(BIN / "mlops-wb"), "demo"], cwd=root, env=clean_env(MLOPS_WB_USER="data-scientist"),
                       capture_output=True, text=True, timeout=1500)
    (root / "demo-first-run.log").write_text(r.stdout + "\n" + r.stderr)
    assert r.returncode == 0, f"mlops-wb demo failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return root


@pytest.fixture(scope="session")
def postgres_uri(tmp_path_factory):
    "An empty, migrated MLflow store on a fresh PostgreSQL cluster (Debian's) on 127.0.0.1; its URI holds the password."
    import tempfile

    from mlops_wb.server import start_postgres, stop_postgres, with_driver

    folder = Path(tempfile.mkdtemp(prefix="mlops_wb_pg_"))
    folder.chmod(0o755)  # the postgres user must reach the cluster inside
    try:
        uri = with_driver(start_postgres(folder).uri)  # postgresql+psycopg2://...: SQLAlchemy's default is psycopg 3
        code = f"from mlflow import MlflowClient; MlflowClient(tracking_uri={uri!r}).search_experiments()"
        subprocess.run([sys.executable, "-c", code], check=True, env=clean_env(), capture_output=True, timeout=600)
        yield uri
    finally:
        stop_postgres(folder, remove=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def http_receiver():
    "A real HTTP server on 127.0.0.1 that records alerts and verifies webhook signatures (see alert_receivers.py)."
    from alert_receivers import HttpReceiver

    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def smtp_receiver():
    "A factory of real SMTP servers (aiosmtpd) on free ports of 127.0.0.1, stopped after the test."
    from alert_receivers import SmtpReceiver

    started = []

    def start(**kwargs):
        started.append(SmtpReceiver(free_port(), **kwargs))
        return started[-1]

    yield start
    for s in started:
        s.stop()


# The module notebooks are executed once per test run, and the docs site is rendered from those executed copies
# (docs/run_notebooks.py, docs/make_docs.py). Every test that uses these fixtures is in the xdist group "notebooks",
# so one worker executes them, two at a time, while the other runs the rest of the suite.
DOCS = REPO / "docs"
NOTEBOOKS_GROUP = [pytest.mark.xdist_group("notebooks"), pytest.mark.timeout(3600)]  # the first test waits for them all


def docs_tools():
    "The docs build's modules (docs/run_notebooks.py, docs/make_docs.py)."
    if str(DOCS) not in sys.path:
        sys.path.insert(0, str(DOCS))
    import make_docs
    import run_notebooks

    return run_notebooks, make_docs


@pytest.fixture(scope="session")
def executed_notebooks(request) -> dict:
    "The selected tests' module notebooks (all of them for the docs tests), each executed once now: name -> result."
    rn, _ = docs_tools()
    items = request.session.items
    wanted = {item.callspec.params["nb"] for item in items
              if item.originalname == "test_notebook_runs" and hasattr(item, "callspec")}
    if any("docs_site" in getattr(item, "fixturenames", ()) for item in items):
        wanted = set(rn.notebooks_to_execute())
    # a developer's shortcut: reuse the executions `make docs` cached under the same content hash (CI never sets it)
    reuse = os.environ.get("MLOPS_WB_TEST_NOTEBOOK_CACHE") == "1"
    results = rn.execute(sorted(wanted), force=not reuse, progress=False)
    return {r.notebook: r for r in results}


@pytest.fixture(scope="session")
def docs_site(executed_notebooks):
    "The docs site, rendered by Sphinx (warnings as errors) from the notebooks executed for this run."
    rn, md = docs_tools()
    failed = sorted(name for name, r in executed_notebooks.items() if not r.ok)
    if failed:
        pytest.fail(f"the docs need every notebook to run; these failed (see test_notebook_runs): {failed}")
    start = time.time()
    md.write_sources({name: rn.cached_path(rn.NBS / name) for name in executed_notebooks})
    code, warnings = md.sphinx()
    return md.Site(md.HTML, code, warnings, time.time() - start)


PLAYED_APPROVAL = """[approval]
approvers = alice, bob, carol, dana, erin
four_eyes = true
# a test plays several people on one machine: declared names (user=, approver=, MLOPS_WB_USER) may act
allow_declared_user = true
"""


@pytest.fixture
def played_users(tmp_path_factory, monkeypatch):
    "Registry tests that play alice, bob, carol, dana and erin on one machine: their settings.ini, via MLOPS_WB_SETTINGS."
    folder = tmp_path_factory.mktemp("played")
    (folder / "settings.ini").write_text(PLAYED_APPROVAL)
    monkeypatch.setenv("MLOPS_WB_SETTINGS", str(folder / "settings.ini"))
    monkeypatch.delenv("MLOPS_WB_USER", raising=False)
    return folder / "settings.ini"
