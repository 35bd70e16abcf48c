"""Every command the README shows in a ```bash block, and every command the demo prints, runs as shown.

The commands are read from README.md at test time, so a command another section adds later is run too. Each runs
through the console script in a copy of a project where the demo ran. A command that cannot run here is listed in
NOT_RUN with the reason; an `mlops-wb` one is still checked: its `--help`, and its arguments parsed by the real
command line. Placeholders in capitals (RUN_ID) are the only words replaced, by the values in PLACEHOLDERS.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import BIN, REPO, clean_env, free_port

pytestmark = pytest.mark.xdist_group("demo")  # it uses the demo's project

README = REPO / "README.md"

# Why a command shown in the README does not run in this test. Every entry must still be in the README.
NOT_RUN = {
    "make demo": "creates .venv and runs `mlops-wb demo`, which runs below (and in tests/test_demo.py)",
    "make test": "runs this whole suite",
    "mlops-wb demo": "runs as typed, through the console script: in an empty folder from the wheel installed in a "
                     "fresh venv (tests/test_packaging.py), on a new project (the demo project of these tests, in "
                     "tests/conftest.py) and again on a finished one (tests/test_demo.py)",
    "make export": "rewrites the library from the notebooks; tests/test_literate.py checks it would change nothing",
    "make lint": "ruff over the package, tests and benchmarks; tests/test_literate.py runs it",
    "export MLOPS_WB_BACKEND_URI='postgresql://mlflow:PASSWORD@db.internal:5432/mlflow'":
        "sets the password of a PostgreSQL server this machine does not have",
    "mlops-wb server start --port 5000": "needs PostgreSQL; tests/team/test_server.py starts a real server",
    "mlops-wb server status": "reports on that server (exit 1 when none runs); tests/team/test_server.py",
    "mlops-wb server stop": "stops that server; tests/team/test_server.py",
    "mlops-wb drift-profile 'warehouse/train/*.parquet' reference_profile.json --scheduler tcp://scheduler:8786":
        "needs a Dask cluster at scheduler:8786 and its warehouse; tests/test_drift_dask.py runs a real cluster",
    "mlops-wb drift 'warehouse/train/*.parquet' batch.csv --scheduler local --fail-on-drift":
        "reads a data warehouse this project does not have; tests/test_drift_dask.py runs the same on a real cluster",
    "mlops-wb sweep train -g C '0.1,1,10' --scheduler tcp://scheduler:8786":
        "needs a Dask cluster at scheduler:8786; the sweep on a real LocalCluster runs in nbs/07b3_sweep.ipynb",
    "mlops-wb alerts test": "needs a configured channel; tests/test_alerts.py runs it against a real HTTP receiver "
                            "and a real SMTP server",
    "mlops-wb alerts list --all": "lists recorded alerts; tests/test_alerts.py records undeliverable ones and lists them",
    "mlops-wb alerts retry": "re-sends recorded alerts; tests/test_alerts.py records undeliverable ones and re-sends them",
    "mlops-wb monitor reference train.parquet --model models:/churn@champion --target churned --key customer_id":
        "a churn model and its data; tests/test_monitor.py runs the same commands on a real model and batches",
    "mlops-wb monitor 'batches/2024-06-02/*.parquet' --model models:/churn@champion --retrain retrain.yaml":
        "the same: tests/test_monitor.py",
    "mlops-wb monitor labels labels-2024-06.csv --key customer_id --target churned": "the same: tests/test_monitor.py",
    "mlops-wb monitor history --html drift.html": "the same: tests/test_monitor.py reads the history from the store",
    "mlops-wb drift-profile train.parquet reference_profile.json":
        "the drift guide's generic file names; the same commands run above on the demo's files",
    "mlops-wb drift reference_profile.json batch.csv --fail-on-drift": "the same, on the demo's files above",
    "pip install 'mlops-wb[auth]'": "installs from the package index; tests/test_packaging.py installs the built wheel "
                                    "into a fresh venv",
    "mlops-wb server start --auth --host 0.0.0.0 --port 5000":
        "the team's authenticated server; tests/team/test_auth.py starts a real one on PostgreSQL",
    "mlops-wb server add-user alice": "a user of that server; tests/team/test_auth.py adds alice, bob, carol, mallory",
    "MLOPS_WB_NEW_PASSWORD=\"$(pass show mlflow/bob)\" mlops-wb server add-user bob":
        "a password from the reader's own secret store; tests/team/test_auth.py sets MLOPS_WB_NEW_PASSWORD",
    "mlops-wb server add-user pipeline": "the same: tests/team/test_auth.py",
    "mlops-wb server add-user dana --admin": "the same: tests/team/test_auth.py",
    "mlops-wb server add-user bob --update": "the same: tests/team/test_auth.py",
    "export MLFLOW_TRACKING_URI=http://mlflow.example.org:5000": "the team's server by name; tests/team/test_auth.py "
                                                                 "points clients at a real one",
    "export MLFLOW_TRACKING_USERNAME=bob MLFLOW_TRACKING_PASSWORD=...": "a real login; tests/team/test_auth.py logs in",
    "mlops-wb approve churn 4 -c \"reviewed the gate report\"":
        "bob's approval on that server; tests/team/test_auth.py approves as bob through the console script",
    "make docs": "builds the docs site; tests/test_docs.py builds it from the notebooks this suite executes",
}
# Commands that run, but not in the demo's project: where, and why.
ELSEWHERE = {"mlops-wb init": "an empty folder: the demo's project has a settings.ini, which init never overwrites"}
# Files the commands name, written into the project before they run (what a user would have written).
FILES = {"params.yaml": "dataset: iris\nout_dir: .mlops_wb/work/iris\n",
         "pipeline.yaml": "name: mine\nsteps:\n  ingest:\n    notebook: ingest\n"
                          "    parameters: {dataset: breast_cancer, seed: 7, out_dir: .mlops_wb/work/mine}\n"
                          "  monitor:\n    notebook: monitor\n    needs: [ingest]\n"
                          "    parameters: {reference_path: '${ingest.train_path}', current_path: '${ingest.batch_path}',"
                          " out_dir: .mlops_wb/work/mine/monitor}\n"}


def readme_commands() -> list[str]:
    "Each command of README.md's ```bash blocks: one per line, comments removed."
    text = README.read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                out.append(shlex.join(words))
    return out


def normal(command: str) -> str:
    return shlex.join(shlex.split(command, comments=True))


COMMANDS = readme_commands()


def test_the_allow_lists_are_current():
    assert len(COMMANDS) > 15, COMMANDS
    for listed in (*NOT_RUN, *ELSEWHERE):
        assert normal(listed) in COMMANDS, f"{listed!r} is no longer in the README: take it off the list"
    unknown = [c for c in COMMANDS if c.split()[0] != "mlops-wb" and c not in map(normal, NOT_RUN)]
    assert not unknown, f"README commands that are not mlops-wb commands and not in NOT_RUN with a reason: {unknown}"


@pytest.fixture(scope="module")
def project(demo_project, tmp_path_factory):
    "A copy of the demo's project, with the files the README's commands name, and the values of the placeholders."
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("readme") / "project"
    shutil.copytree(demo_project, root)
    for name, text in FILES.items():
        (root / name).write_text(text)
    client = MlflowClient(tracking_uri=f"sqlite:///{root}/.mlops_wb/mlflow.db")
    exp = client.get_experiment_by_name("mlops_wb pipelines")
    (ingest,) = client.search_runs([exp.experiment_id], filter_string="tags.`mlops_wb.step` = 'ingest' and "
                                   "tags.`mlops_wb.cache_key` LIKE '%'", max_results=1)
    return root, {"RUN_ID": ingest.info.run_id}  # PLACEHOLDERS: the demo's ingest run


def split_command(words: list[str]):
    "An mlops-wb command line as (the command's path, the command, the rest of its arguments)."
    from mlops_wb.cli import load_commands

    cmd, path, rest = load_commands(), [], list(words[1:])
    while rest and hasattr(cmd, "get_command") and cmd.get_command(None, rest[0]) is not None:
        cmd, path, rest = cmd.get_command(None, rest[0]), [*path, rest[0]], rest[1:]
    return path, cmd, rest


def parses(words: list[str]) -> None:
    "Parse an mlops-wb command line with the real command line, without running it (raises a usage error)."
    path, cmd, rest = split_command(words)
    cmd.make_context(" ".join(["mlops-wb", *path]), rest)


def mlops_wb(words, cwd, env=None):
    return subprocess.run([str(BIN / "mlops-wb"), *words[1:]], cwd=cwd, env=env or clean_env(), capture_output=True,
                          text=True, timeout=1500)


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command(command, project, tmp_path):
    root, placeholders = project
    words = [placeholders.get(w, w) for w in shlex.split(command)]
    unfilled = [w for w in words if re.fullmatch(r"[A-Z][A-Z_]+", w)]
    assert not unfilled, f"{command}: add the placeholders {unfilled} to the project fixture"
    reason = dict((normal(k), v) for k, v in NOT_RUN.items()).get(command)
    if reason:
        if words[0] == "mlops-wb":  # not run, but its help and its arguments are checked
            r = mlops_wb(["mlops-wb", *split_command(words)[0], "--help"], cwd=tmp_path)
            assert r.returncode == 0, r.stderr
            parses(words)
        return
    cwd = tmp_path if command in map(normal, ELSEWHERE) else root
    r = mlops_wb(words, cwd)
    assert r.returncode == 0 and "Traceback" not in r.stderr, \
        f"`{command}` exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


def test_every_command_the_demo_prints(project, tmp_path):
    root, _ = project
    log = (root / "demo-first-run.log").read_text()
    printed = log.split("Open the results:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    commands = [re.split(r"\s{3,}", line.strip(), maxsplit=1) for line in printed if line.strip()]
    assert [c[0].split()[0] for c in commands] == ["mlflow", "jupyter", "mlops-wb"], commands
    for command, *note in commands:
        words = shlex.split(command)
        if words[0] == "mlflow":  # a server: started as printed (on a free port), asked for the demo's experiments
            port = free_port()
            server = subprocess.Popen([str(BIN / "mlflow"), *words[1:], "--host", "127.0.0.1", "--port", str(port)],
                                      # MLflow's job runner (eleven processes for its GenAI jobs) only loads the machine
                                      cwd=tmp_path, env=clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
                                      start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                body, deadline = "", time.time() + 180
                while time.time() < deadline and "mlops_wb pipelines" not in body:
                    try:
                        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=50"
                        body = urllib.request.urlopen(url, timeout=5).read().decode()
                    except OSError:
                        time.sleep(1)
                assert "mlops_wb pipelines" in body, "the printed `mlflow ui` does not show the demo's store"
            finally:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)
        elif words[0] == "jupyter":
            # opens a browser: tests/browser/test_workbench.py opens this notebook in a real JupyterLab, and
            # tests/test_demo.py runs it under papermill; here, the printed path is the workbench notebook
            assert words[1:2] == ["lab"] and (root / words[2]).read_bytes() == (REPO / "nbs" / "workbench.ipynb").read_bytes()
        else:
            env = clean_env(**dict(re.findall(r"\b(MLOPS_WB_\w+)=(\w+)", note[0] if note else "")))
            r = mlops_wb(words, root, env=env)
            assert r.returncode == 0, f"`{command}` (as printed by the demo) exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
            assert "(pending -> approved)" in r.stdout, r.stdout
