"""`mlops-wb server` on a real PostgreSQL, driven as a user drives it, and the workbench working against it unchanged.

Everything is checked with MLflow's own client (and, for the data, straight from PostgreSQL), and nothing may be
left behind: no server process, no port taken, no password in any output, file or process command line.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from conftest import free_port
from team.procs import group_processes, port_free

BIN = Path(sys.executable).parent


def _cli() -> list[str]:
    "The `mlops-wb` console script."
    return [str(BIN / "mlops-wb")]


def env(**extra: str) -> dict[str, str]:
    "The environment without variables that would point the workbench elsewhere."
    out = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "MLOPS_WB_SETTINGS", "MLOPS_WB_USER", "MLOPS_WB_BACKEND_URI")}
    out["MLFLOW_DISABLE_TELEMETRY"] = "true"
    out.update(extra)
    return out


def run(*args: str, cwd: Path, check: bool = True, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([*_cli(), *args], cwd=cwd, env=env(**(extra_env or {})), capture_output=True, text=True,
                       timeout=300)
    if check:
        assert r.returncode == 0, f"mlops-wb {' '.join(args[:2])} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def assert_nothing_left(project: Path, pid: int, port: int) -> None:
    deadline = time.time() + 10  # the kernel may take a moment to free the port
    while (group_processes(pid) or not port_free(port)) and time.time() < deadline:
        time.sleep(0.2)
    assert group_processes(pid) == [], f"server processes left: {group_processes(pid)}"
    assert port_free(port), f"port {port} still taken"
    state = project / ".mlops_wb" / "server"
    assert not (state / "server.pid").exists() and not (state / "server.json").exists()


def test_server_commands_are_in_the_console_script(tmp_path):
    r = subprocess.run([str(BIN / "mlops-wb"), "server", "--help"], cwd=tmp_path, env=env(), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "start" in r.stdout and "status" in r.stdout, (
        "`mlops-wb server` is missing: add 'mlops_wb.cli.server' to COMMAND_MODULES in nbs/09_cli.ipynb.\n"
        + r.stdout + r.stderr)


def test_team_server_on_postgres_runs_the_workbench_unchanged(postgres, project, tmp_path):
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    from mlops_wb.core import ensure_experiment, get_client
    from mlops_wb.server import with_driver
    from mlops_wb.tracking import load_runs

    port = free_port()
    r = run("server", "start", "--backend-uri", postgres.uri, "--port", str(port), cwd=project)
    url = f"http://127.0.0.1:{port}"
    assert f"MLflow server at {url}" in r.stdout and "healthy" in r.stdout, r.stdout
    assert f"backend store: {postgres.masked_uri}" in r.stdout
    assert f"export MLFLOW_TRACKING_URI={url}" in r.stdout
    state = project / ".mlops_wb" / "server"
    pid = int((state / "server.pid").read_text())
    try:
        status = json.loads(run("server", "status", "--json", cwd=project).stdout)
        assert (status["running"], status["healthy"], status["pid"], status["url"]) == (True, True, pid, url)
        assert status["backend_uri"] == postgres.masked_uri
        assert status["artifacts"] == str(state / "artifacts") and status["uptime_s"] >= 0
        text = run("server", "status", cwd=project).stdout
        assert "healthy" in text and "uptime:" in text

        # the workbench, unchanged, against the URL
        client = get_client(url)
        exp_id = ensure_experiment("team-demo", client=client)
        assert ensure_experiment("team-demo", client=client) == exp_id
        run_ids = []
        for i in range(3):
            run_id = client.create_run(exp_id, run_name=f"run-{i}").info.run_id
            now = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric("acc", 0.8 + i / 100, now, 0), Metric("loss", 1 - i / 10, now, 0)],
                             params=[Param("alpha", str(i)), Param("model", "ridge")])
            client.set_terminated(run_id)
            run_ids.append(run_id)
        client.log_text(run_ids[0], "hello team", "notes/hello.txt")
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "weights.txt").write_text("0.5 0.25")
        client.log_artifacts(run_ids[2], str(tmp_path / "model"), "model")
        client.create_registered_model("team_model")
        source = f"{client.get_run(run_ids[2]).info.artifact_uri}/model"
        version = client.create_model_version("team_model", source, run_id=run_ids[2]).version
        client.set_registered_model_alias("team_model", "champion", version)
        frame = load_runs("team-demo", client=client)
        assert sorted(frame["run_id"]) == sorted(run_ids)
        assert sorted(frame["params.alpha"]) == ["0", "1", "2"]

        # checked with a fresh MLflow client, through the server
        fresh = MlflowClient(tracking_uri=url, registry_uri=url)
        runs = {r.info.run_id: r for r in fresh.search_runs([exp_id])}
        assert set(runs) == set(run_ids)
        for i, run_id in enumerate(run_ids):
            data = runs[run_id].data
            assert data.params == {"alpha": str(i), "model": "ridge"}
            assert data.metrics == {"acc": 0.8 + i / 100, "loss": 1 - i / 10}
            assert runs[run_id].info.status == "FINISHED"
        got = Path(fresh.download_artifacts(run_ids[0], "notes/hello.txt", str(tmp_path))).read_text()
        assert got == "hello team"
        assert [p.read_text() for p in (state / "artifacts").rglob("hello.txt")] == ["hello team"]
        champion = fresh.get_model_version_by_alias("team_model", "champion")
        assert (champion.version, champion.run_id) == (version, run_ids[2])
        assert fresh.download_artifacts(run_ids[2], "model/weights.txt", str(tmp_path / "dl"))

        # ...and the data really is in PostgreSQL: read it with MLflow's SQL store, bypassing the server
        direct = MlflowClient(tracking_uri=with_driver(postgres.uri))
        assert {r.info.run_id for r in direct.search_runs([exp_id])} == set(run_ids)
        aliases = direct.get_registered_model("team_model").aliases  # the SQL store gives the version as an int
        assert {k: str(v) for k, v in aliases.items()} == {"champion": version}

        info = json.loads(run("info", "--uri", url, "--json", cwd=project).stdout)
        assert info["tracking_uri"] == url and info["tracking_uri_source"] == "argument"
        assert {"name": "team-demo", "id": exp_id, "runs": 3} in info["experiments"]
        assert {"name": "team_model", "aliases": {"champion": version}, "latest_version": int(version)} \
            in info["registered_models"]
        # a project pointed at the server by MLFLOW_TRACKING_URI sees the same store
        info = json.loads(run("info", "--json", cwd=project, extra_env={"MLFLOW_TRACKING_URI": url}).stdout)
        assert info["tracking_uri_source"] == "MLFLOW_TRACKING_URI"
        assert "team-demo" in [e["name"] for e in info["experiments"]]
    finally:
        r = run("server", "stop", cwd=project)
    assert f"Stopped the MLflow server at {url} (pid {pid})" in r.stdout
    assert_nothing_left(project, pid, port)
    r = run("server", "status", cwd=project, check=False)
    assert r.returncode == 1 and "No MLflow server is running" in r.stdout
    assert run("server", "stop", cwd=project).stdout.startswith("No MLflow server is running")


def _with(uri: str, *, password: str | None = None, database: str | None = None) -> str:
    parts = urlsplit(uri)
    netloc = parts.netloc
    if password is not None:
        netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}" if database else parts.path))


def test_passwords_never_appear_and_errors_are_clear(postgres, project):
    password = urlsplit(postgres.uri).password
    assert len(password) >= 16
    outputs: list[str] = []
    port = free_port()
    r = run("server", "start", "--backend-uri", postgres.uri, "--port", str(port), cwd=project)
    outputs += [r.stdout, r.stderr]
    state = project / ".mlops_wb" / "server"
    pid = int((state / "server.pid").read_text())
    try:
        # no password on any server process's command line (`ps` shows those to every user)
        procs = group_processes(pid)
        assert len(procs) >= 1
        for p in procs:
            assert password not in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")
        for args in (("server", "status"), ("server", "status", "--json")):
            r = run(*args, cwd=project)
            outputs += [r.stdout, r.stderr]
        r = run("server", "start", "--backend-uri", postgres.uri, "--port", str(free_port()), cwd=project, check=False)
        assert r.returncode == 1 and "is already running at" in r.stderr, r.stderr
        outputs += [r.stdout, r.stderr]
        files = {p.name: p.read_text(errors="replace") for p in state.iterdir() if p.is_file()}
        assert {"server.json", "server.pid", "server.log"} <= set(files)
    finally:
        r = run("server", "stop", cwd=project)
        outputs += [r.stdout, r.stderr]
    assert_nothing_left(project, pid, port)
    outputs += [(state / "server.log").read_text(errors="replace")]

    # a wrong password is refused before any server starts, and is masked too
    wrong = "Wr0ng-" + password[::-1]
    r = run("server", "start", "--port", str(free_port()), cwd=project, check=False,
            extra_env={"MLOPS_WB_BACKEND_URI": _with(postgres.uri, password=wrong)})
    assert r.returncode == 1 and "password authentication failed" in r.stderr, r.stderr
    assert "Could not connect to the database postgresql://mlflow:***@127.0.0.1" in r.stderr
    assert wrong not in r.stdout + r.stderr
    # nothing listens on this port: an unreachable database is reported at once
    closed = free_port()
    r = run("server", "start", "--port", str(free_port()), "--backend-uri", _with(postgres.uri, database="x")
            .replace(f":{postgres.port}/", f":{closed}/"), cwd=project, check=False)
    assert r.returncode == 1 and "Connection refused" in r.stderr, r.stderr
    outputs += [r.stdout, r.stderr]

    # the database answers but the role may not create MLflow's tables there: the server dies while it starts,
    # and the error carries the telling line of its log, masked
    port = free_port()
    started = time.time()
    r = run("server", "start", "--port", str(port), "--backend-uri", _with(postgres.uri, database="postgres"),
            cwd=project, check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "The MLflow server on postgresql://mlflow:***@127.0.0.1" in r.stderr, r.stderr
    assert "permission denied for schema public" in r.stderr, r.stderr
    assert time.time() - started < 90
    assert port_free(port) and not (state / "server.json").exists()
    outputs += [r.stdout, r.stderr, (state / "server.log").read_text(errors="replace")]

    for text in outputs:
        assert password not in text, text
