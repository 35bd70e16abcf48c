"""Loading runs at 10,000: `load_runs` beside `mlflow.search_runs` and `MlflowClient.search_runs`, on SQLite and on
PostgreSQL, in one run.

The experiment (built once through MLflow's client, cached under bench/results/): 10,000 runs, each with 10 params,
10 final metrics, 2 metric histories of 50 steps and 3 tags, logged with one `log_batch` per run. The PostgreSQL
store is a fresh cluster (Debian's PostgreSQL, `mlops_wb.server.start_postgres`), migrated by MLflow, holding the
same rows: they are copied table by table from the SQLite store (logging 10,000 runs again through the client
would take a quarter of an hour and measure nothing more).

For each store, medians of `--repeat` alternating runs, wall time and the CPU time of this process:

- `mlflow.search_runs` of every run (the anchor)
- `MlflowClient.search_runs`, paging through every run (1,000 per page, MLflow's default)
- `mlops_wb.tracking.load_runs` of every run (reading MLflow's tables)            target: 5x faster than the anchor
- `mlops_wb.tracking.load_runs(reader="client")` (through MlflowClient.search_runs, for reference)
- the first page: `next(iter_run_pages(..., as_frames=True))` (100 runs)          target: a tenth of the anchor
- MLflow's first page: `MlflowClient.search_runs(max_results=100)`

Run: .venv/bin/python bench/tracking.py [--runs 10000] [--repeat 5] [--rebuild] [--no-postgres]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

RESULTS = Path(__file__).resolve().parent / "results"
EXPERIMENT = "bench-tracking"
STEPS = 50
TABLES = ("experiments", "runs", "params", "tags", "latest_metrics", "metrics")


def payload(i: int, rng: random.Random, ts: int):
    "Params, metrics (final and two histories) and tags of synthetic run `i`."
    from mlflow.entities import Metric, Param, RunTag

    quality = rng.uniform(0.6, 0.95)
    params = {"model": rng.choice(["rf", "gbm", "logreg"]), "n_estimators": str(rng.choice([50, 100, 200])),
              "max_depth": str(rng.randint(2, 12)), "learning_rate": f"{10 ** rng.uniform(-3, 0):.5f}",
              "min_samples_leaf": str(rng.randint(1, 20)), "subsample": f"{rng.uniform(0.5, 1):.3f}",
              "C": f"{10 ** rng.uniform(-2, 2):.4f}", "penalty": rng.choice(["l1", "l2", "none"]),
              "class_weight": rng.choice(["balanced", "None"]), "seed": str(rng.randint(0, 10_000))}
    final = {"accuracy": quality, "precision": quality - 0.02, "recall": quality - 0.05, "f1": quality - 0.03,
             "roc_auc": min(1.0, quality + 0.03), "log_loss": 1.2 - quality, "rmse": 1 - quality,
             "mae": (1 - quality) * 0.8, "r2": quality - 0.1, "fit_seconds": rng.uniform(0.1, 30)}
    metrics = [Metric(k, v, ts, 0) for k, v in final.items()]
    for key, level in (("train_loss", 1.5), ("val_loss", 1.7)):
        metrics += [Metric(key, level * (1 - quality) * (1 + 3 * 0.9 ** s), ts + 10 * s, s) for s in range(STEPS)]
    tags = [RunTag("team", rng.choice(["vision", "tabular", "nlp"])), RunTag("stage", rng.choice(["dev", "prod"])),
            RunTag("note", f"run {i}")]
    return [Param(k, v) for k, v in params.items()], metrics, tags


def sqlite_store(runs: int, rebuild: bool) -> Path:
    "The cached SQLite store with `runs` runs (built through MLflow's client when missing)."
    from mlflow import MlflowClient
    from tqdm.auto import tqdm

    folder = RESULTS / f"tracking_store_{runs}"
    if (folder / "done").exists() and not rebuild:
        return folder / "mlflow.db"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.create_experiment(EXPERIMENT, artifact_location=(folder / "artifacts").as_uri())
    rng, t0 = random.Random(0), int(time.time() * 1000) - runs * 1000
    for i in tqdm(range(runs), desc="building the SQLite store", unit="run", mininterval=5):
        params, metrics, tags = payload(i, rng, t0 + 1000 * i)
        run = client.create_run(exp, run_name=f"run-{i:05d}", start_time=t0 + 1000 * i)
        client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=tags)
        client.set_terminated(run.info.run_id, end_time=t0 + 1000 * i + 900)
    (folder / "done").write_text(str(runs))
    return folder / "mlflow.db"


def postgres_copy(db: Path, folder: Path) -> str:
    "A PostgreSQL store migrated by MLflow holding the rows of the SQLite store `db`; returns its URI."
    import psycopg2
    from mlflow import MlflowClient
    from psycopg2.extras import execute_values

    from mlops_wb.server import start_postgres, with_driver

    pg = start_postgres(folder)
    uri = with_driver(pg.uri)
    MlflowClient(uri).search_experiments()  # MLflow creates and migrates its tables
    src = sqlite3.connect(db)
    dst = psycopg2.connect(host="127.0.0.1", port=pg.port, user=pg.user, password=pg.password, dbname=pg.database)
    with dst, dst.cursor() as cur:
        for table in TABLES:
            cur.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s", (table,))
            pg_cols = dict(cur.fetchall())
            cols = [r[1] for r in src.execute(f"PRAGMA table_info({table})") if r[1] in pg_cols]
            booleans = [i for i, c in enumerate(cols) if pg_cols[c] == "boolean"]
            rows = src.execute(f"SELECT {', '.join(cols)} FROM {table}" + (" WHERE experiment_id != 0"
                                                                            if table == "experiments" else ""))
            batch = [tuple(bool(v) if i in booleans else v for i, v in enumerate(r)) for r in rows]
            quoted = ", ".join(f'"{c}"' for c in cols)
            execute_values(cur, f"INSERT INTO {table} ({quoted}) VALUES %s", batch, page_size=5000)
        cur.execute("ANALYZE")
    dst.close()
    src.close()
    return uri


def timed(fn, *args, **kwargs):
    "(wall seconds, CPU seconds of this process, result)."
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t, time.process_time() - c, out


def client_paging(client, exp_id: str) -> int:
    "Every run through MlflowClient.search_runs with page tokens, 1,000 at a time; the number of runs."
    n, token = 0, None
    while True:
        page = client.search_runs([exp_id], max_results=1000, page_token=token)
        n += len(page)
        token = page.token
        if not token:
            return n


def measure(uri: str, runs: int, repeat: int) -> list[tuple[str, float, float]]:
    "(what, wall seconds, CPU seconds) medians for one store."
    import mlflow
    from mlflow import MlflowClient

    from mlops_wb.core import get_client
    from mlops_wb.tracking import iter_run_pages, load_runs, table_reader

    client = get_client(uri)
    assert table_reader(client) is not None, "the tables of this store cannot be read directly"
    exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    mlflow.set_tracking_uri(uri)
    plain = MlflowClient(uri)
    calls = {
        "mlflow.search_runs, every run (anchor)": lambda: len(mlflow.search_runs([exp_id], max_results=100_000)),
        "MlflowClient.search_runs, paging through every run": lambda: client_paging(plain, exp_id),
        "mlops_wb load_runs, every run": lambda: len(load_runs(exp_id, client=client, progress=False)),
        "mlops_wb load_runs(reader='client'), every run": lambda: len(load_runs(exp_id, client=client, progress=False,
                                                                                 reader="client")),
        "mlops_wb first page: next(iter_run_pages(as_frames=True))": lambda: len(next(iter_run_pages(
            exp_id, client=client, as_frames=True))),
        "MlflowClient.search_runs(max_results=100), first page": lambda: len(plain.search_runs([exp_id], max_results=100)),
    }
    for call in calls.values():  # warm every path once
        call()
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in calls}
    for _ in range(repeat):
        for what, call in calls.items():
            wall, cpu, n = timed(call)
            assert n in (runs, 100), (what, n)
            times[what].append((wall, cpu))
    return [(what, statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for what, t in times.items()]


def report(name: str, rows: list[tuple[str, float, float]]) -> dict:
    anchor = rows[0][1]
    print(f"\n### {name}\n")
    print("| what | wall s | CPU s (this process) | anchor / this (wall) |")
    print("|---|---:|---:|---:|")
    for what, wall, cpu in rows:
        print(f"| {what} | {wall:.3f} | {cpu:.3f} | {anchor / wall:.1f}x |")
    load = dict((w, s) for w, s, _ in rows)
    full = anchor / load["mlops_wb load_runs, every run"]
    first = load["mlops_wb first page: next(iter_run_pages(as_frames=True))"] / anchor
    print(f"\nfull load: {full:.1f}x faster than mlflow.search_runs (target 5x: {'met' if full >= 5 else 'NOT met'}); "
          f"first page in {first:.3f} of its time (target 0.1: {'met' if first <= 0.1 else 'NOT met'})")
    return {"rows": rows, "full_load_ratio": full, "first_page_share": first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached SQLite store")
    parser.add_argument("--no-postgres", action="store_true", help="measure SQLite only")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    db = sqlite_store(args.runs, args.rebuild)
    work = Path(tempfile.mkdtemp(prefix="mlops_wb_bench_"))
    work.chmod(0o755)  # PostgreSQL runs as the postgres user under root
    copy = work / "mlflow.db"
    shutil.copy(db, copy)  # measure a copy: the cache stays untouched
    out = {"runs": args.runs, "cores": os.cpu_count(), "load_average": os.getloadavg()}
    print(f"{args.runs} runs x (10 params, 10 metrics, 2 histories of {STEPS} steps, 3 tags); median of {args.repeat}; "
          f"{os.cpu_count()} cores, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    try:
        out["sqlite"] = report("SQLite", measure(f"sqlite:///{copy}", args.runs, args.repeat))
        if not args.no_postgres:
            from mlops_wb.server import stop_postgres

            try:
                uri = postgres_copy(db, work)
                out["postgresql"] = report("PostgreSQL", measure(uri, args.runs, args.repeat))
            finally:
                stop_postgres(work, remove=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (RESULTS / "tracking.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
