"""Experiment comparison at scale: our `load_runs`, the widget in the browser and `compare_runs` beside MLflow.

Builds (once, cached under bench/results/) an experiment of 10,000 runs in a SQLite store: 10 params, 10 final
metrics and 2 metric histories of 50 steps each per run (1,000 logged through MLflow's client, then copied with new
ids, names and start times). Then prints, measured in the same run:

- `mlflow.search_runs` of all runs            (the anchor)
- `mlops_wb.tracking.load_runs` of all runs   (target: no slower than the anchor)
- time to `ExperimentComparison`'s first view in Python (target: at most a tenth of the anchor)
- where the user looks, in a real JupyterLab in Debian's Chromium (Playwright), from Shift+Enter in a warm kernel:
  the first rows visible (target: a tenth of the anchor), every run loaded (target: 5x faster than the anchor) and
  the longest main-thread stall (PerformanceObserver longtask; target: under 200 ms); each the median of --repeat
  trials, each in a fresh page (every trial is printed, and kept in compare.json)
- MLflow's own UI (`mlflow server` on the same store): its runs page, from navigation until the newest run shows
- `compare_runs` of 100 runs with histories   (target: faster than fetching their histories one by one)

Run: .venv/bin/python bench/compare.py [--runs 10000] [--repeat 3] [--rebuild] [--no-browser]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

RESULTS = Path(__file__).resolve().parent / "results"
EXPERIMENT = "bench-compare"
PARAMS = 10
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "rmse", "mae", "r2", "fit_seconds")
HISTORIES = ("train_loss", "val_loss")
STEPS = 50


def _run_payload(i: int, rng: random.Random, t0: int):
    "Params, metrics (final and histories) and tags of synthetic run number `i`."
    from mlflow.entities import Metric, Param, RunTag

    model = rng.choice(["random_forest", "gradient_boosting", "logistic_regression"])
    params = {
        "model": model, "n_estimators": str(rng.choice([50, 100, 200, 400])), "max_depth": str(rng.randint(2, 12)),
        "learning_rate": f"{10 ** rng.uniform(-3, 0):.5f}", "min_samples_leaf": str(rng.randint(1, 20)),
        "subsample": f"{rng.uniform(0.5, 1):.3f}", "C": f"{10 ** rng.uniform(-2, 2):.4f}",
        "penalty": rng.choice(["l1", "l2", "none"]), "class_weight": rng.choice(["balanced", "None"]),
        "seed": str(rng.randint(0, 10_000)),
    }
    assert len(params) == PARAMS
    quality = rng.uniform(0.6, 0.95)
    ts = t0 + i * 1000
    values = {"accuracy": quality, "precision": quality - rng.uniform(0, 0.05), "recall": quality - rng.uniform(0, 0.1),
              "f1": quality - rng.uniform(0, 0.07), "roc_auc": min(1.0, quality + rng.uniform(0, 0.05)),
              "log_loss": 1.2 - quality + rng.uniform(0, 0.1), "rmse": 1 - quality, "mae": (1 - quality) * 0.8,
              "r2": quality - 0.1, "fit_seconds": rng.uniform(0.1, 30)}
    metrics = [Metric(k, v, ts, 0) for k, v in values.items()]
    for key in HISTORIES:
        level = 1.5 if key == "train_loss" else 1.7
        for s in range(STEPS):
            metrics.append(Metric(key, level * (1 - quality) * (1 + 3 * 0.9 ** s) + rng.gauss(0, 0.01), ts + 10 * s, s))
    tags = [RunTag("team", rng.choice(["vision", "tabular", "nlp"])), RunTag("mlflow.user", "bench")]
    return [Param(k, v) for k, v in params.items()], metrics, tags


def replicate(db: Path, runs: int) -> int:
    "Copy the logged runs (new ids, names and start times; same params, metrics, tags) until there are `runs`."
    import sqlite3
    import uuid

    con = sqlite3.connect(db)
    try:
        base = [r[0] for r in con.execute("SELECT run_uuid FROM runs ORDER BY start_time")]
        t0 = con.execute("SELECT min(start_time) FROM runs").fetchone()[0]
        logged = len(base)
        con.execute("CREATE TEMP TABLE copies (old TEXT, new TEXT, i INTEGER)")
        con.executemany("INSERT INTO copies VALUES (?, ?, ?)",
                        [(base[i % logged], uuid.uuid4().hex, i) for i in range(logged, runs)])
        special = {"run_uuid": "c.new", "name": "printf('run-%05d', c.i)", "start_time": f"{t0} + c.i * 1000",
                   "end_time": f"{t0} + c.i * 1000 + 900", "artifact_uri": "replace(x.artifact_uri, x.run_uuid, c.new)"}
        for table in ("runs", "params", "metrics", "latest_metrics", "tags"):
            cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
            picks = {**{c: f"x.{c}" for c in cols}, "run_uuid": "c.new"}
            if table == "runs":
                picks.update({c: v for c, v in special.items() if c in cols})
            if table == "tags":
                picks["value"] = "CASE WHEN x.key = 'mlflow.runName' THEN printf('run-%05d', c.i) ELSE x.value END"
            con.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(picks[c] for c in cols)} "
                        f"FROM {table} x JOIN copies c ON x.run_uuid = c.old")
        con.commit()
    finally:
        con.close()
    return logged


def build_store(path: Path, runs: int, logged: int = 1000) -> None:
    "Create the benchmark store at `path` (SQLite): `logged` runs through MLflow's client, copied up to `runs`."
    from mlflow import MlflowClient
    from tqdm.auto import tqdm

    tmp = path.with_suffix(".building")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    eid = client.create_experiment(EXPERIMENT, artifact_location=(path / "artifacts").as_uri())
    rng = random.Random(0)
    t0 = int(time.time() * 1000) - runs * 1000
    for i in tqdm(range(min(runs, logged)), desc="building the benchmark store", unit="run", mininterval=2):
        params, metrics, tags = _run_payload(i, rng, t0)
        run = client.create_run(eid, run_name=f"run-{i:05d}", start_time=t0 + i * 1000)
        client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=tags)
        client.set_terminated(run.info.run_id, end_time=t0 + i * 1000 + 900)
    finish_store(tmp, path, runs)


def finish_store(tmp: Path, path: Path, runs: int) -> None:
    "Copy the logged runs up to `runs` (logging 10,000 runs one by one takes most of an hour) and move the store."
    logged = replicate(tmp / "mlflow.db", runs)
    (tmp / "spec.json").write_text(json.dumps({"runs": runs, "logged": logged, "params": PARAMS,
                                                "metrics": len(METRICS), "histories": len(HISTORIES), "steps": STEPS}))
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)


def store_for(runs: int, rebuild: bool) -> str:
    "The tracking URI of a cached store with `runs` runs, built if missing."
    path = RESULTS / f"compare_store_{runs}"
    spec = path / "spec.json"
    if rebuild or not spec.exists() or json.loads(spec.read_text()).get("runs") != runs:
        t = time.perf_counter()
        build_store(path, runs)
        print(f"built the store with {runs} runs in {time.perf_counter() - t:.0f} s: {path}", file=sys.stderr)
    return f"sqlite:///{path / 'mlflow.db'}"



def timed(fn, *args, **kwargs):
    "(seconds, result) of one call."
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t, out


def timed_cpu(fn, *args, **kwargs):
    "(wall seconds, CPU seconds of this process, result) of one call: CPU time is robust to other processes' load."
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t, time.process_time() - c, out


def first_view_cold(uri: str) -> float:
    "Seconds to the widget's first view in a fresh process, including importing the widget module (not mlflow)."
    code = (f"import time, mlflow, mlops_wb.core as c; client = c.get_client({uri!r}); client.search_experiments(); "
            "t = time.perf_counter(); from mlops_wb.widgets import ExperimentComparison; "
            f"w = ExperimentComparison({EXPERIMENT!r}, client=client); print(time.perf_counter() - t); w.wait()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


CHROMIUM = "/usr/bin/chromium"

# Installed before the notebook loads: long tasks (main-thread stalls over 50 ms) with their start times.
LONGTASKS_JS = """window.__longtasks = [];
try { new PerformanceObserver(l => l.getEntries().forEach(e => window.__longtasks.push([e.startTime, e.duration])))
        .observe({entryTypes: ['longtask']}); } catch (e) {}"""

# Armed right before Shift+Enter: the times (ms after arming) of the first visible run rows (the grid's, or the
# output's first snapshot table) and of the status saying every run is loaded. It looks once per frame, just before
# the frame is painted, so that its own visibility checks never force extra layouts inside the page's tasks (they
# would count as the page's stalls).
WATCH_JS = """n => { const w = window.__mlwbBench = {t0: performance.now(), first: null, grid: null, full: null};
  const seen = sel => [...document.querySelectorAll(sel)].some(e => e.offsetParent !== null);
  let queued = false;
  const schedule = () => { if (!queued) { queued = true; requestAnimationFrame(check); } };
  const check = () => { queued = false; const t = performance.now() - w.t0;
    if (w.grid === null && seen('.mlwb-grid-row[data-key]')) w.grid = t;
    if (w.first === null && (w.grid !== null || seen('.mlwb-view tbody tr'))) w.first = t;
    if (w.full === null && [...document.querySelectorAll('.mlwb-view .mlwb-status, .mlwb-view p')]
          .some(e => e.textContent.includes(`${n} of ${n} runs.`))) w.full = t; };
  new MutationObserver(schedule).observe(document.body, {subtree: true, childList: true, characterData: true,
                                                      attributes: true});
}"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(cmd: list[str], url: str, log: Path, cwd: Path, env: dict) -> subprocess.Popen:
    "Start a server in its own process group; wait until `url` answers."
    import urllib.request

    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + 180
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return proc
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                _stop(proc)
                raise RuntimeError(f"{cmd[0]} did not start:\n" + log.read_text()[-3000:]) from None
            time.sleep(0.5)


def _stop(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def _widget_in_lab(browser, url: str, runs: int, reset) -> dict[str, float]:  # noqa: ANN001 - Playwright's Browser
    "One trial in a fresh page (the kernel stays warm): Shift+Enter on the comparison until every run is in."
    reset()  # the notebook without the outputs of an earlier trial (JupyterLab may have saved them)
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.add_init_script(LONGTASKS_JS)
    page.goto(url)
    page.wait_for_selector(".jp-Notebook", timeout=180_000)
    idle = ("() => { const e = document.querySelector('.jp-Notebook-ExecutionIndicator');"
            " return e && e.getAttribute('data-status') === 'idle'; }")
    try:  # Lab may ask which kernel to start
        page.wait_for_selector(".jp-Dialog:has-text('Select Kernel')", timeout=5000)
        page.click(".jp-Dialog button:has-text('Select')")
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError: no dialog
        pass
    page.wait_for_function(idle, timeout=180_000)
    cells = page.locator(".jp-Notebook .jp-Cell")
    cells.nth(0).locator(".jp-InputArea-prompt").click()  # select the cell (command mode)
    page.keyboard.press("Shift+Enter")  # warm the kernel: imports, the client
    page.wait_for_function("() => /\\[\\d+\\]/.test(document.querySelector('.jp-Cell .jp-InputPrompt')"
                           ".textContent)", timeout=300_000)
    page.wait_for_function(idle, timeout=300_000)
    cells.nth(1).locator(".jp-InputArea-prompt").click()
    page.evaluate(WATCH_JS, runs)
    page.keyboard.press("Shift+Enter")
    page.wait_for_function("() => window.__mlwbBench.full !== null", timeout=900_000, polling=200)
    w = page.evaluate("() => window.__mlwbBench")
    stalls = page.evaluate("t0 => window.__longtasks.filter(([s, d]) => s + d >= t0).map(([s, d]) => d)", w["t0"])
    page.wait_for_function(idle, timeout=300_000)
    page.close()
    return {"first rows": w["first"] / 1000, "first grid rows": (w["grid"] or float("nan")) / 1000,
            "all runs": w["full"] / 1000, "longest stall ms": max(stalls, default=0.0),
            "stalls over 200 ms": float(sum(d > 200 for d in stalls))}


def browser_figures(uri: str, runs: int, work: Path, repeat: int = 3) -> dict[str, float]:
    "The widget in a real JupyterLab, and MLflow's UI runs page, on the same store (medians of `repeat` trials)."
    import secrets

    import nbformat
    from playwright.sync_api import sync_playwright

    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLOPS_WB_SETTINGS")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "import mlflow\nfrom mlops_wb.core import get_client\nfrom mlops_wb.widgets import ExperimentComparison\n"
        f"client = get_client({uri!r})\nclient.get_experiment_by_name({EXPERIMENT!r}).experiment_id"),
        nbformat.v4.new_code_cell(f"ExperimentComparison({EXPERIMENT!r}, client=client)")]
    nbformat.write(nb, str(work / "bench.ipynb"))
    out: dict[str, float] = {}
    port, token = _free_port(), secrets.token_hex(16)
    lab = _serve([str(bin_dir / "jupyter"), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                  f"--IdentityProvider.token={token}", "--allow-root", f"--ServerApp.root_dir={work}",
                  "--LabApp.news_url="], f"http://127.0.0.1:{port}/api/status?token={token}", work / "lab.log",
                 work, env)
    mport = _free_port()
    db = uri.removeprefix("sqlite:///")
    ui = _serve([str(bin_dir / "mlflow"), "server", "--backend-store-uri", uri, "--default-artifact-root",
                 (Path(db).parent / "artifacts").as_uri(), "--host", "127.0.0.1", "--port", str(mport),
                 "--workers", "1"], f"http://127.0.0.1:{mport}/health", work / "mlflow.log", work, env)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            trials = [_widget_in_lab(browser, f"http://127.0.0.1:{port}/lab/tree/bench.ipynb?token={token}", runs,
                                     lambda: nbformat.write(nb, str(work / "bench.ipynb")))
                      for _ in range(repeat)]
            for key in trials[0]:
                out[key] = statistics.median(t[key] for t in trials)
            out["trials"] = trials
            # MLflow's UI: once to load its scripts, then timed until the newest run's row shows
            from mlflow import MlflowClient

            eid = MlflowClient(tracking_uri=uri).get_experiment_by_name(EXPERIMENT).experiment_id
            mpage = browser.new_page(viewport={"width": 1400, "height": 1400})
            for i, t in enumerate(trials, 1):
                print(f"  browser trial {i}: {t}", file=sys.stderr, flush=True)
            mpage.goto(f"http://127.0.0.1:{mport}/")  # MLflow's UI polls: wait for its page, not an idle network
            mpage.wait_for_load_state("load", timeout=180_000)
            mpage.get_by_text(EXPERIMENT).first.wait_for(timeout=180_000)
            newest = f"run-{runs - 1:05d}"
            ui_times = []
            for _ in range(repeat):
                mpage.goto(f"http://127.0.0.1:{mport}/")
                mpage.get_by_text(EXPERIMENT).first.wait_for(timeout=180_000)
                t = time.perf_counter()
                mpage.goto(f"http://127.0.0.1:{mport}/#/experiments/{eid}/runs")
                mpage.get_by_text(newest).first.wait_for(timeout=600_000)
                ui_times.append(time.perf_counter() - t)
            out["mlflow ui first rows"] = statistics.median(ui_times)
            browser.close()
    finally:
        _stop(lab)
        _stop(ui)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5, help="repeats of each full-load timing (median reported)")
    parser.add_argument("--selected", type=int, default=100, help="runs given to compare_runs")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached store")
    parser.add_argument("--no-browser", action="store_true", help="skip the JupyterLab / MLflow UI measurements")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    uri = store_for(args.runs, args.rebuild)

    import mlflow

    from mlops_wb.core import get_client
    from mlops_wb.tracking import compare_runs, load_runs
    from mlops_wb.widgets.compare import ExperimentComparison

    mlflow.set_tracking_uri(uri)
    client = get_client(uri)
    exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    rows: list[tuple[str, float, float | None, str]] = []

    class Rows(list):
        def append(self, row):  # noqa: ANN001 - print each figure as soon as it is measured
            print(f"  {row[0]}: {row[1]:.2f} s" + (f" (target {row[2]:.2f} s: {row[3]})" if row[2] is not None else ""),
                  file=sys.stderr, flush=True)
            super().append(row)

    rows = Rows()

    # 1-2. all runs: MLflow's search_runs against our load_runs, alternating so both see the same machine load
    theirs_t, ours_t, theirs_c, ours_c = [], [], [], []
    timed(load_runs, EXPERIMENT, client=client, progress=False)  # warm caches once, for both
    for _ in range(args.repeat):
        t, c, theirs = timed_cpu(mlflow.search_runs, [exp_id], max_results=100_000)
        theirs_t.append(t)
        theirs_c.append(c)
        t, c, ours = timed_cpu(load_runs, EXPERIMENT, client=client, progress=False)
        ours_t.append(t)
        ours_c.append(c)
    assert len(ours) == len(theirs) == args.runs and set(ours.run_id) == set(theirs.run_id)
    search_all, search_cpu = statistics.median(theirs_t), statistics.median(theirs_c)
    rows.append(("all runs: mlflow.search_runs (anchor), wall", search_all, None, ""))
    rows.append(("all runs: mlflow.search_runs (anchor), CPU of this process", search_cpu, None, ""))
    load_all, load_cpu = statistics.median(ours_t), statistics.median(ours_c)
    rows.append(("all runs: mlops_wb load_runs, wall", load_all, search_all,
                 "met" if load_all <= search_all else "NOT met"))
    rows.append(("all runs: mlops_wb load_runs, CPU of this process", load_cpu, search_cpu,
                 "met" if load_cpu <= search_cpu else "NOT met"))

    # 3. the widget's first view: constructor returns with the first page shown, the rest loading in a thread
    firsts, fulls = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        w = ExperimentComparison(EXPERIMENT, client=client)
        firsts.append(time.perf_counter() - t0)
        shown = len(w.view)
        w.wait()
        fulls.append(time.perf_counter() - t0)
        assert w.complete and len(w.runs) == args.runs and not w.error, w.error
    first = statistics.median(firsts)
    rows.append((f"widget first view ({shown} runs shown, rest loading)", first, search_all / 10,
                 "met" if first <= search_all / 10 else "NOT met"))
    cold = statistics.median(first_view_cold(uri) for _ in range(3))
    rows.append(("widget first view in a fresh process, including importing the widget module", cold,
                 search_all / 10, "met" if cold <= search_all / 10 else "NOT met"))
    rows.append(("widget: every run loaded and in the table", statistics.median(fulls), None, ""))

    # 3b. where the user looks: JupyterLab in Chromium, and MLflow's own UI, on the same store
    browser = {} if args.no_browser else browser_figures(uri, args.runs, RESULTS / "compare_browser", args.repeat)
    if browser:
        rows.append(("browser: first rows visible after Shift+Enter", browser["first rows"], search_all / 10,
                     "met" if browser["first rows"] <= search_all / 10 else "NOT met"))
        rows.append(("browser: first rows of the live grid", browser["first grid rows"], None, ""))
        rows.append((f"browser: all {args.runs} runs loaded (status says so)", browser["all runs"], search_all / 5,
                     "met" if browser["all runs"] <= search_all / 5 else "NOT met"))
        rows.append(("browser: longest main-thread stall (seconds)", browser["longest stall ms"] / 1000, 0.2,
                     "met" if browser["longest stall ms"] < 200 else
                     f"NOT met ({browser['stalls over 200 ms']:.0f} stalls over 200 ms)"))
        rows.append(("MLflow UI: runs page until the newest run shows", browser["mlflow ui first rows"], None, ""))

    # 4. compare_runs of N selected runs with their histories, against MLflow fetching histories one by one
    chosen = ours.sample(args.selected, random_state=0).run_id.tolist()
    keys = {r: [c.removeprefix("metrics.") for c in ours.columns if c.startswith("metrics.")] for r in chosen}
    t_cmp, cmp = timed(compare_runs, chosen, client=client)

    def one_by_one(key_filter=None):
        n = 0
        for r in chosen:
            for k in keys[r]:
                if key_filter is None or k in key_filter:
                    n += len(client.get_metric_history(r, k))
        return n

    t_anchor, n_anchor = timed(one_by_one)
    assert n_anchor == len(cmp.histories), (n_anchor, len(cmp.histories))
    rows.append((f"{args.selected} runs, every metric's history: MLflow get_metric_history one by one "
                 f"({sum(len(v) for v in keys.values())} calls)", t_anchor, None, ""))
    rows.append((f"{args.selected} runs: mlops_wb compare_runs (runs, diff, best, all histories)", t_cmp, t_anchor,
                 "met" if t_cmp < t_anchor else "NOT met"))
    t_anchor2, n2 = timed(one_by_one, set(HISTORIES))
    t_cmp2, cmp2 = timed(compare_runs, chosen, histories=list(HISTORIES), client=client)
    assert n2 == len(cmp2.histories)
    rows.append((f"{args.selected} runs, {len(HISTORIES)} histories: MLflow one by one "
                 f"({args.selected * len(HISTORIES)} calls)", t_anchor2, None, ""))
    rows.append((f"{args.selected} runs: compare_runs(histories={list(HISTORIES)})", t_cmp2, t_anchor2,
                 "met" if t_cmp2 < t_anchor2 else "NOT met"))

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{args.runs} runs x ({PARAMS} params, {len(METRICS)} metrics, {len(HISTORIES)} histories of {STEPS} "
          f"steps); SQLite; median of {args.repeat} where repeated; {os.cpu_count()} cores, load average {load}\n")
    print("| what | seconds | target (s) | |")
    print("|---|---:|---:|---|")
    for what, secs, target, verdict in rows:
        print(f"| {what} | {secs:.2f} | {'' if target is None else f'{target:.2f}'} | {verdict} |")
    (RESULTS / "compare.json").write_text(json.dumps(
        {"runs": args.runs, "rows": [{"what": w, "seconds": s, "target": t, "verdict": v} for w, s, t, v in rows],
         "search_runs_all": theirs_t, "load_runs_all": ours_t, "search_runs_cpu": theirs_c, "load_runs_cpu": ours_c,
         "first_view": firsts, "browser": browser}, indent=2))


if __name__ == "__main__":
    if "--build-only" in sys.argv:
        store_for(int(os.environ.get("RUNS", "10000")), rebuild=False)
    else:
        main()
