"""Team scale, measured in one run: runs logged per second with 1, 2 and 4 concurrent client processes.

Three stores side by side, all on this machine and on loopback only:
  1. `mlflow server` on a PostgreSQL backend (the shared team server: `mlops_wb.server.start_server`);
  2. `mlflow server` on a SQLite backend (the same server, MLflow's single-file store);
  3. direct SQLite, no server (the embedded default: every client opens the file itself).
One run = create_run + one log_batch (10 params, 10 metrics) + set_terminated, through `mlflow.MlflowClient`.
Each cell runs N client processes (forked, already warm: imported, connected, one run logged) for `--seconds`;
the figure is all their finished runs divided by the wall time. Afterwards every store is searched with MLflow's
client to check that each run a client logged is there (no loss). PostgreSQL and both servers are started here,
on free ports on 127.0.0.1, and stopped at the end.

Second half, distributed drift: `compute_drift(reference=<Dask DataFrame>, current=<pandas batch>)` on a
`dask.distributed.LocalCluster` of 1, 2 and 4 worker processes (one thread each), on a 10M-row reference made on
the workers (40 partitions; 5 numeric columns, one small-integer and one text column) and kept in their memory, so
the figure is the drift work itself: per-partition profiles on the workers, merged in the driver, then compared.
Beside it, the anchor: plain pandas in one process, `compute_drift(reference=<the same 10M rows in pandas>)`, and
the peak memory each needs. Each cluster's profile is checked to be identical to the others'.

Run: .venv/bin/python bench/team.py [--seconds 5] [--clients 1,2,4] [--drift-rows 10000000] [--only tracking|drift]
(about 4-5 minutes on 2 cores)
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # no "View run" line per run

PARAMS = 10
METRICS = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_one(client, experiment_id: str, worker: int, i: int) -> str:
    "One benchmark run: create, one log_batch of 10 params and 10 metrics, terminate."
    from mlflow.entities import Metric, Param

    run_id = client.create_run(experiment_id, run_name=f"w{worker}-{i}").info.run_id
    now = int(time.time() * 1000)
    client.log_batch(run_id, params=[Param(f"p{k}", str(k * i)) for k in range(PARAMS)],
                     metrics=[Metric(f"m{k}", k * 0.5 + i, now, 0) for k in range(METRICS)])
    client.set_terminated(run_id)
    return run_id


def worker(uri: str, experiment: str, index: int, seconds: float, barrier, results) -> None:
    "A client process: connect, warm up with one run, wait for the others, then log runs for `seconds`."
    try:
        from mlflow import MlflowClient

        from mlops_wb.core import ensure_experiment

        client = MlflowClient(tracking_uri=uri)
        exp_id = ensure_experiment(experiment, client=client)
        log_one(client, exp_id, index, -1)  # warm-up, not counted
        barrier.wait(timeout=300)
        done, errors, latencies, first_error = 0, 0, [], None
        t0 = time.perf_counter()
        while (start := time.perf_counter()) - t0 < seconds:
            try:
                log_one(client, exp_id, index, done + errors)
                done += 1
                latencies.append(time.perf_counter() - start)
            except Exception as e:  # count every failure a user would see (SQLite's "database is locked", HTTP 5xx)
                errors += 1
                first_error = first_error or f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
        results.put({"worker": index, "done": done, "errors": errors, "elapsed": time.perf_counter() - t0,
                     "latencies": latencies, "error": first_error})
    except Exception:
        barrier.abort()
        results.put({"worker": index, "crash": traceback.format_exc()})


def measure(uri: str, experiment: str, clients: int, seconds: float) -> dict:
    "Run `clients` forked worker processes against `uri`; aggregate their counts."
    ctx = mp.get_context("fork")  # the parent has imported mlflow but opened no store: children start warm and fast
    barrier, results = ctx.Barrier(clients), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(uri, experiment, i, seconds, barrier, results)) for i in range(clients)]
    for p in procs:
        p.start()
    out = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    crashes = [r["crash"] for r in out if "crash" in r]
    if crashes:
        raise RuntimeError("a client process failed:\n" + crashes[0])
    lat = sorted(x for r in out for x in r["latencies"])
    done = sum(r["done"] for r in out)
    return {"clients": clients, "runs": done, "errors": sum(r["errors"] for r in out),
            "rate": done / max(r["elapsed"] for r in out),
            "p50": 1000 * statistics.median(lat) if lat else float("nan"),
            "p95": 1000 * lat[int(0.95 * (len(lat) - 1))] if lat else float("nan"),
            "error": next((r["error"] for r in out if r["error"]), None)}


def count_runs(uri: str, experiment: str) -> int:
    "Finished runs of `experiment` in the store, counted with MLflow's own client (page by page)."
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    n, token = 0, None
    while True:
        page = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'FINISHED'",
                                  max_results=1000, page_token=token)
        n += len(page)
        token = page.token
        if not token:
            return n


def main(args: argparse.Namespace) -> None:
    counts = [int(c) for c in args.clients.split(",")]
    if args.seconds <= 0 or args.seconds > 60 or not counts or min(counts) < 1 or max(counts) > 8:
        raise SystemExit("--seconds must be in (0, 60] and --clients between 1 and 8")

    import mlflow  # noqa: F401  (imported before forking, so the client processes start warm)

    from mlops_wb.server import start_postgres, start_server, stop_postgres, stop_server

    work = Path(tempfile.mkdtemp(prefix="bench_team_"))
    work.chmod(0o755)  # the postgres user must reach its cluster inside
    t_start = time.perf_counter()
    try:
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; Python "
              f"{platform.python_version()}, mlflow {mlflow.__version__}", flush=True)
        pg = start_postgres(work / "pg")
        print(f"PostgreSQL {pg.version} on 127.0.0.1:{pg.port}; starting three mlflow servers ...", flush=True)
        with ThreadPoolExecutor(3) as pool:
            pg_server = pool.submit(start_server, backend_uri=pg.uri, port=free_port(), folder=work / "pg_server",
                                    wait=180)
            sq_server = pool.submit(start_server, backend_uri=f"sqlite:///{work}/server.db", port=free_port(),
                                    folder=work / "sqlite_server", wait=180)
            pg_url = pg_server.result().url  # it created MLflow's tables: the second server must not race it there
            pg2_server = pool.submit(start_server, backend_uri=pg.uri, port=free_port(), folder=work / "pg2_server",
                                     workers=2, wait=180)
            pg2_url, sq_url = pg2_server.result().url, sq_server.result().url
        direct = f"sqlite:///{work}/direct.db"
        subprocess.run([sys.executable, "-c", f"from mlflow import MlflowClient; MlflowClient('{direct}')"],
                       check=True, capture_output=True)  # migrate once, outside the measurement
        stores = [(f"mlflow server on PostgreSQL {pg.version}", pg_url),
                  (f"mlflow server --workers 2 on PostgreSQL {pg.version}", pg2_url),
                  ("mlflow server on SQLite", sq_url), ("direct SQLite (no server)", direct)]
        rows = []
        for i, (label, uri) in enumerate(stores):  # both PostgreSQL servers share one database: names apart
            for n in counts:
                r = measure(uri, f"bench-{i}-{n}", n, args.seconds)
                rows.append((label, uri, r))
                print(f"  {label:<46} {n} client(s): {r['rate']:7.1f} runs/s", flush=True)
        found = {}
        for i, (label, uri) in enumerate(stores):
            found[label] = sum(count_runs(uri, f"bench-{i}-{n}") for n in counts)
    finally:
        for folder in ("pg_server", "pg2_server", "sqlite_server"):
            stop_server(work / folder)
        stop_postgres(work / "pg", remove=True)
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"Runs logged per second: create_run + log_batch ({PARAMS} params, {METRICS} metrics) + set_terminated;")
    print(f"N client processes for {args.seconds:g} s per cell; mlflow server with one worker unless named; loopback only.")
    print(f"{'store':<46}{'clients':>8}{'runs':>7}{'errors':>8}{'runs/s':>9}{'p50 ms':>9}{'p95 ms':>9}")
    for label, _, r in rows:
        print(f"{label:<46}{r['clients']:>8}{r['runs']:>7}{r['errors']:>8}{r['rate']:>9.1f}{r['p50']:>9.1f}"
              f"{r['p95']:>9.1f}")
    print()
    for label, _uri in stores:
        logged = sum(r["runs"] for lab, _, r in rows if lab == label) + sum(counts)  # + one warm-up run per client
        verdict = "none lost" if found[label] == logged else f"MISMATCH ({logged - found[label]} missing)"
        print(f"{label:<46} runs logged {logged:>6}, found by MLflow's client {found[label]:>6}: {verdict}")
    for label, _, r in rows:
        if r["error"]:
            print(f"first error, {label}, {r['clients']} clients: {r['error']}")
    print(f"\ntotal time {time.perf_counter() - t_start:.0f} s")



# --- Distributed drift: speed-up of compute_drift on a 10M-row Dask DataFrame with 1, 2 and 4 workers ------------
DRIFT_PARTITIONS = 40


def make_partition(i: int, rows: int, shift: float = 0.0):
    "One partition of the drift data, made where it runs (seeded by its index)."
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1000 + i)
    return pd.DataFrame({
        "amount": rng.lognormal(3, 1, rows) * (1 + shift), "score": rng.normal(shift, 1, rows),
        "latency": rng.gamma(2.0, 50, rows), "ratio": rng.beta(2, 5, rows), "t": rng.standard_t(4, rows),
        "level": rng.integers(0, 8, rows),
        "city": rng.choice(np.array(["Oslo", "Lima", "Pune", "Kobe", "Graz"], dtype=object), rows),
    })


def _peak_rss_mb(pid: int | None = None) -> float:
    "Peak resident memory (VmHWM) of a process, in MiB."
    for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _pandas_anchor(rows: int, current_path: str, out) -> None:
    "In a fresh process: the whole reference as one pandas frame, compute_drift on it; time and peak memory."
    import pandas as pd

    from mlops_wb.drift import compute_drift

    per = rows // DRIFT_PARTITIONS
    df = pd.concat([make_partition(i, per) for i in range(DRIFT_PARTITIONS)], ignore_index=True)
    current = pd.read_pickle(current_path)
    t0 = time.perf_counter()
    report = compute_drift(reference=df, current=current, progress=False)
    out.put({"seconds": time.perf_counter() - t0, "rss": _peak_rss_mb(), "drifted": report.n_drifted})


def drift_bench(rows: int, worker_counts: list[int]) -> None:
    import dask
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster, wait

    from mlops_wb.drift import compute_drift

    per = rows // DRIFT_PARTITIONS
    current = make_partition(10_000, 200_000, shift=0.2)
    work = Path(tempfile.mkdtemp(prefix="bench_drift_"))
    current.to_pickle(work / "current.pkl")
    print(f"\nDistributed drift: {per * DRIFT_PARTITIONS:,} reference rows x 7 columns in {DRIFT_PARTITIONS} "
          f"partitions; current batch {len(current):,} rows; {os.cpu_count()} CPUs", flush=True)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    p = ctx.Process(target=_pandas_anchor, args=(per * DRIFT_PARTITIONS, str(work / "current.pkl"), out))
    p.start()
    anchor = out.get(timeout=3600)
    p.join()
    print(f"  pandas, one process: {anchor['seconds']:.1f} s, peak memory {anchor['rss']:,.0f} MiB", flush=True)
    rows_out, profiles = [], []
    default_env = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    untrimmed = {k: v for k, v in default_env.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    cells = [(n, "Dask's default worker environment", default_env) for n in worker_counts]
    cells += [(n, "MALLOC_TRIM_THRESHOLD_ unset", untrimmed) for n in worker_counts]
    try:
        for n, env_label, env in cells:
            if "MALLOC_TRIM_THRESHOLD_" not in env:  # a nanny also writes its environment into this process's
                os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
            with dask.config.set({"distributed.nanny.pre-spawn-environ": env}), \
                    LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                 dashboard_address=":0", memory_limit=0, silence_logs=50) as cluster, \
                    Client(cluster) as client:
                ddf = dd.from_map(make_partition, range(DRIFT_PARTITIONS), rows=per,
                                  meta=make_partition(0, 0), enforce_metadata=False)
                ddf = client.persist(ddf)
                wait(ddf)  # the data now lives in the workers' memory; what follows is the drift work
                times = []
                for _ in range(2):
                    t0 = time.perf_counter()
                    report = compute_drift(reference=ddf, current=current, progress=False)
                    times.append(time.perf_counter() - t0)
                from mlops_wb.drift import DriftProfile

                profiles.append(DriftProfile.fit(ddf, progress=False).to_dict())
                worker_rss = client.run(lambda: _peak_rss_mb())
                rows_out.append({"workers": n, "env": env_label, "seconds": min(times), "drifted": report.n_drifted,
                                 "worker_rss": max(worker_rss.values()), "driver_rss": _peak_rss_mb()})
                print(f"  {n} worker(s), {env_label}: {min(times):.1f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    title = f"compute_drift, {per * DRIFT_PARTITIONS / 1e6:g}M-row reference"
    print(f"{title:<62}{'seconds':>9}{'speed-up':>10}{'vs pandas':>11}{'peak MiB/process':>18}{'drifted':>9}")
    print(f"{'pandas, one process (anchor)':<62}{anchor['seconds']:>9.1f}{'':>10}{'1.00x':>11}"
          f"{anchor['rss']:>18,.0f}{anchor['drifted']:>9}")
    for r in rows_out:
        base = next(b["seconds"] for b in rows_out if b["env"] == r["env"])  # 1 worker, same environment
        label = f"Dask, {r['workers']} worker(s), {r['env']}"
        print(f"{label:<62}{r['seconds']:>9.1f}{base / r['seconds']:>9.2f}x{anchor['seconds'] / r['seconds']:>10.2f}x"
              f"{r['worker_rss']:>18,.0f}{r['drifted']:>9}")
    same = all(_without_moments(p) == _without_moments(profiles[0]) for p in profiles)
    print(f"profiles identical across every cell (counts, buckets, categories): {'yes' if same else 'NO'}; "
          f"driver peak {max(r['driver_rss'] for r in rows_out):,.0f} MiB")
    print(f"speed-up is against 1 worker in the same environment; this machine has {os.cpu_count()} CPUs, so more "
          "workers than CPUs share them. Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which makes "
          "every large numpy temporary a fresh mmap")


def _without_moments(d: dict) -> list:
    return [{k: v for k, v in (c["numeric"] or {}).items() if k not in ("mean", "m2")} | {"cat": c["categories"]}
            for c in d["columns"]]


def cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="measuring time per cell (default 5)")
    ap.add_argument("--clients", default="1,2,4", help="concurrent client processes per cell (default 1,2,4)")
    ap.add_argument("--drift-rows", type=int, default=10_000_000, help="reference rows of the drift half")
    ap.add_argument("--workers", default="1,2,4", help="Dask worker processes per drift cell (default 1,2,4)")
    ap.add_argument("--only", choices=("tracking", "drift"), help="run one half only")
    args = ap.parse_args()
    if args.only != "drift":
        main(args)
    if args.only != "tracking":
        drift_bench(args.drift_rows, [int(w) for w in args.workers.split(",")])


if __name__ == "__main__":
    cli()
