"""What the approval workflow costs beside MLflow's bare alias move, in one run: locally, and through the server.

1. Local (embedded SQLite): `approve` + `promote` by the library in this process, against
   `MlflowClient.set_registered_model_alias` on the same store.
2. The mlops_wb server (`start_server(auth=True)` on a PostgreSQL started here, MLflow basic auth, two users):
   `approve` + `promote` as bob (each transition runs inside the server), against a bare
   `set_registered_model_alias` on the same server by its service account (the only account that may move an alias
   there, and the cheapest request: an MLflow admin skips MLflow's permission checks).

Every round is interleaved (bare move, approve, promote), and the figures are medians. Client calls are counted
here, in this process: MlflowClient method calls and HTTP requests (including those MlflowClient makes).
PostgreSQL and the server listen on free ports on 127.0.0.1 and are stopped at the end.

Run: .venv/bin/python bench/registry.py [--rounds 15]       (about 3 minutes on 2 cores)
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

warnings.filterwarnings("ignore")
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
for _var in ("MLOPS_WB_USER", "MLOPS_WB_SETTINGS", "MLFLOW_TRACKING_URI", "MLOPS_WB_AUDIT_KEY",
             "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
    os.environ.pop(_var, None)

PASSWORDS = {"alice": "alice-bench-password-0123", "bob": "bob-bench-password-0123"}
SETTINGS = """[approval]
approvers = bob
four_eyes = true
"""


class Counter:
    "Counts MlflowClient method calls and HTTP requests made by this process while `counting`."

    def __init__(self):
        self.client = self.http = 0
        self.on = False

    def install(self) -> None:
        import requests.adapters
        from mlflow import MlflowClient

        def wrap(fn, attr):
            def counted(*args, **kwargs):
                if self.on:
                    setattr(self, attr, getattr(self, attr) + 1)
                return fn(*args, **kwargs)
            return counted

        for name, fn in list(vars(MlflowClient).items()):
            if callable(fn) and not name.startswith("_"):
                setattr(MlflowClient, name, wrap(fn, "client"))
        adapter = requests.adapters.HTTPAdapter
        adapter.send = wrap(adapter.send, "http")

    @contextmanager
    def counting(self):
        self.client = self.http = 0
        self.on = True
        try:
            yield self
        finally:
            self.on = False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def login(user: str, password: str):
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = user, password
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
        os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)


def med(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def local(folder: Path, rounds: int, counter: Counter) -> dict:
    "approve + promote on an embedded SQLite store, beside a bare alias move on the same store."
    from mlops_wb.core import get_client, load_settings
    from mlops_wb.registry import approve, promote, register, request_approval

    (folder / "settings.ini").write_text(SETTINGS + "allow_declared_user = true\n")  # alice and bob on one machine
    settings = load_settings(folder / "settings.ini")
    c = get_client(f"sqlite:///{folder}/m.db")
    versions = []
    for i in range(rounds):
        v = register(f"{folder}/model{i}", "m", user="alice", client=c, settings=settings).version
        request_approval("m", v, user="alice", client=c, settings=settings)
        versions.append(v)
    c.create_registered_model("anchor")
    anchors = [c.create_model_version("anchor", f"{folder}/anchor{i}").version for i in range(3)]
    bare, both, calls = [], [], []
    for i, v in enumerate(versions):
        bare.append(timed(lambda i=i: c.set_registered_model_alias("anchor", "bare", anchors[i % 3])))
        with counter.counting():
            both.append(timed(lambda v=v: (
                approve("m", v, approver="bob", comment="bench", override="bench", client=c, settings=settings),
                promote("m", v, approver="bob", comment="bench", client=c, settings=settings))))
        calls.append(counter.client)
    with counter.counting():
        c.set_registered_model_alias("anchor", "bare", anchors[0])
    return {"bare": bare, "both": both, "calls": calls, "bare_calls": counter.client}


def server(folder: Path, rounds: int, counter: Counter) -> dict:
    "approve + promote through the mlops_wb server, beside a bare alias move on the same server."
    from mlflow import MlflowClient

    from mlops_wb.core import get_client
    from mlops_wb.registry import approve, promote, register, request_approval
    from mlops_wb.server import add_users, load_secrets, start_postgres, start_server, stop_postgres, stop_server

    pg_folder = Path(tempfile.mkdtemp(prefix="mlops_wb_bench_pg_"))
    pg_folder.chmod(0o755)  # under root, PostgreSQL runs as `postgres`, which must reach the cluster
    project = folder / "project"
    project.mkdir()
    (project / "settings.ini").write_text(SETTINGS)
    state = project / "server"
    try:
        pg = start_postgres(pg_folder, wait=600)
        info = start_server(backend_uri=pg.uri, port=free_port(), folder=state, wait=900, auth=True,
                            settings=project / "settings.ini")
        add_users(PASSWORDS, folder=state)
        secrets = load_secrets(state)
        url = info.url
        os.chdir(project)
        versions = []
        with login("alice", PASSWORDS["alice"]):
            c = MlflowClient(tracking_uri=url, registry_uri=url)
            exp = c.create_experiment("bench")
            run_id = c.create_run(exp).info.run_id
            c.create_logged_model(exp, name="model", source_run_id=run_id)
            for _ in range(rounds):
                v = register(f"runs:/{run_id}/model", "m", client=c).version
                request_approval("m", v, client=c)
                versions.append(v)
        with login(secrets.service_user, secrets.service_password):
            sc = MlflowClient(tracking_uri=url, registry_uri=url)
            sc.create_registered_model("anchor")
            anchors = [sc.create_model_version("anchor", f"runs:/{run_id}/model", run_id).version for _ in range(3)]
            sc.set_registered_model_alias("anchor", "bare", anchors[0])  # warm: the first login is checked in full
        bare, appr, prom, calls, http = [], [], [], [], []
        with login("bob", PASSWORDS["bob"]):
            client = get_client(url)
            client.get_registered_model("m")  # warm: bob's first login
        for i, v in enumerate(versions):
            with login(secrets.service_user, secrets.service_password):
                bare.append(timed(lambda i=i: sc.set_registered_model_alias("anchor", "bare", anchors[i % 3])))
            with login("bob", PASSWORDS["bob"]), counter.counting():
                appr.append(timed(lambda v=v: approve("m", v, comment="bench", override="bench", client=client)))
                prom.append(timed(lambda v=v: promote("m", v, comment="bench", client=client)))
            calls.append(counter.client)
            http.append(counter.http)
        with login(secrets.service_user, secrets.service_password), counter.counting():
            sc.set_registered_model_alias("anchor", "bare", anchors[0])
        bare_calls, bare_http = counter.client, counter.http
        return {"url": url, "bare": bare, "approve": appr, "promote": prom,
                "both": [a + p for a, p in zip(appr, prom, strict=True)], "calls": calls, "http": http,
                "bare_calls": bare_calls, "bare_http": bare_http}
    finally:
        os.chdir(folder)
        stop_server(state)
        stop_postgres(pg_folder, remove=True)
        shutil.rmtree(pg_folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="approve + promote rounds in each setting")
    args = parser.parse_args()
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    counter = Counter()
    counter.install()
    folder = Path(tempfile.mkdtemp(prefix="mlops_wb_bench_registry_"))
    try:
        (folder / "local").mkdir()
        loc = local(folder / "local", args.rounds, counter)
        srv = server(folder, args.rounds, counter)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    b, s = med(loc["bare"]), med(srv["bare"])
    print(f"rounds={args.rounds} load={os.getloadavg()[0]:.1f} python={sys.version.split()[0]}")
    print("| setting | operation | median | vs bare alias | client calls (HTTP requests) |\n|---|---|---|---|---|")
    print(f"| local SQLite | MLflow `set_registered_model_alias` (anchor) | {b:.0f} ms | 1x | {loc['bare_calls']} |")
    print(f"| local SQLite | `approve` + `promote` by the library | {med(loc['both']):.0f} ms | "
          f"{med(loc['both']) / b:.1f}x | {statistics.median(loc['calls']):.0f} |")
    print(f"| mlops_wb server | MLflow `set_registered_model_alias` by the service account (anchor) | {s:.0f} ms | 1x | "
          f"{srv['bare_calls']} ({srv['bare_http']}) |")
    print(f"| mlops_wb server | `approve` as bob | {med(srv['approve']):.0f} ms | {med(srv['approve']) / s:.1f}x | |")
    print(f"| mlops_wb server | `promote` as bob | {med(srv['promote']):.0f} ms | {med(srv['promote']) / s:.1f}x | |")
    print(f"| mlops_wb server | `approve` + `promote` as bob | {med(srv['both']):.0f} ms | {med(srv['both']) / s:.1f}x | "
          f"{statistics.median(srv['calls']):.0f} ({statistics.median(srv['http']):.0f}) |")
    print(f"server approve+promote min/max {min(srv['both']) * 1000:.0f}/{max(srv['both']) * 1000:.0f} ms; "
          f"bare min/max {min(srv['bare']) * 1000:.0f}/{max(srv['bare']) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
