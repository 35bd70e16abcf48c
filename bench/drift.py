"""Drift benchmark: `compute_drift` beside Evidently's `Report([DataDriftPreset()])` and a floor, in one run.

Data: a reference and a current frame of 20 numeric and 5 categorical (text) columns, the current one shifted on 5
numeric columns, at 10k, 100k and 1M rows per side (seeded, written once to parquet and read by every case).
Cases, each in a fresh process per size:

- floor:     one `np.sort` of every numeric column of both frames (the primitive the engine is built on);
- mlops_wb:  `compute_drift(reference=ref, current=cur)`;
- evidently: `Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur)`.

Time is the wall time of the call alone (imports and data loading excluded): the best of `--repeat` calls in each of
`--rounds` fresh processes, the cases alternating so that a busy moment on a shared machine does not favour one
(Evidently: one process, and one call at 1M rows). Memory is the largest peak of resident memory above the level
after loading the data, sampled every 2 ms and checked against the process's maxrss.

Targets at 1M rows (issue 4): at least 50x faster than Evidently, within 3x of the floor, peak extra memory no more
than the two input frames.

Evidently pins plotly<6 and fails to import with pandas 3, so it cannot live in the project's venv; it runs with
another interpreter. Set it up once, from the repo root:

    uv venv .venv-bench -p 3.11 && uv pip install -p .venv-bench/bin/python evidently "pandas<3" pyarrow

Run (from the repo root; about 5 minutes, most of it Evidently at 1M rows):

    .venv/bin/python bench/drift.py
    .venv/bin/python bench/drift.py --sizes 10000 100000 --evidently-python .venv-bench/bin/python
    .venv/bin/python bench/drift.py --sizes 1000000 --cases floor mlops_wb   # without Evidently: seconds

Without the bench venv, the Evidently column reads "not run".
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

N_NUMERIC, N_CATEGORICAL, N_SHIFTED = 20, 5, 5
REPO = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")


def make_frames(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    "Reference and current frames: 20 numeric columns of assorted shapes, 5 text columns; 5 numeric ones shifted."
    rng = np.random.default_rng(seed)
    shapes = [lambda n: rng.normal(0, 1, n), lambda n: rng.lognormal(3, 0.7, n), lambda n: rng.uniform(-5, 5, n),
              lambda n: rng.exponential(2, n), lambda n: np.round(rng.normal(50, 15, n))]
    cards = [3, 5, 10, 20, 50]
    frames = []
    for side in ("reference", "current"):
        data = {}
        for i in range(N_NUMERIC):
            x = shapes[i % len(shapes)](rows)
            if side == "current" and i < N_SHIFTED:
                x = x + 0.5 * np.std(x)  # half a standard deviation: drift by any measure
            if i in (7, 13):
                x[rng.random(rows) < 0.01] = np.nan
            data[f"num_{i:02d}"] = x
        for j, k in enumerate(cards):
            p = np.linspace(1, 2, k)
            data[f"cat_{j}"] = rng.choice([f"level_{v:02d}" for v in range(k)], rows, p=p / p.sum())
        frames.append(pd.DataFrame(data))
    return frames[0], frames[1]


# -- one case, run in its own process ---------------------------------------------------------------------------------
def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def run_case(case: str, folder: Path, repeat: int) -> dict:
    "Load the frames, then time `case` and sample its peak memory; runs inside the case's own process."
    ref = pd.read_parquet(folder / "reference.parquet")
    cur = pd.read_parquet(folder / "current.parquet")
    numeric = [c for c in ref.columns if c.startswith("num_")]
    if case == "mlops_wb":
        import scipy.stats  # noqa: F401  (imports are not part of the measured call)

        from mlops_wb.drift.compute import compute_drift

        def call():
            return compute_drift(reference=ref, current=cur, progress=False).n_drifted
    elif case == "evidently":
        from evidently import Report
        from evidently.presets import DataDriftPreset

        def call():
            snap = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
            return int(snap.dict()["metrics"][0]["value"]["count"])
    else:
        def call():
            for c in numeric:
                np.sort(ref[c].to_numpy())
                np.sort(cur[c].to_numpy())
            return None
    gc.collect()
    base, max_before = _rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    times, drifted = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        drifted = call()
        times.append(time.perf_counter() - t0)
        gc.collect()
    stop.set()
    sampler.join()
    max_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    top = max(peak[0], max_after if max_after > max_before else 0)
    return {"seconds": min(times), "peak_mib": (top - base) / 2**20, "drifted": drifted}


def spawn(python: str, case: str, folder: Path, repeat: int) -> dict | None:
    "Run one case in a fresh interpreter; None when that interpreter is missing or the case fails."
    if not Path(python).exists():
        return None
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_DISABLE_TELEMETRY": "true"}
    r = subprocess.run([python, __file__, "--case", case, "--folder", str(folder), "--repeat", str(repeat)],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        print(f"  {case} failed:\n{r.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--evidently-python", default=str(REPO / ".venv-bench" / "bin" / "python"))
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per process (the best counts)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="fresh processes per case, alternated (the best counts; Evidently runs once)")
    parser.add_argument("--cases", nargs="+", default=["floor", "mlops_wb", "evidently"],
                        help="which cases to run (default: all three)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, Path(args.folder), args.repeat)))
        return

    print(f"{N_NUMERIC} numeric + {N_CATEGORICAL} text columns, {N_SHIFTED} numeric shifted; "
          f"{os.cpu_count()} CPUs; numpy {np.__version__}, pandas {pd.__version__}")
    header = (f"{'rows/side':>10} {'frames MiB':>11} | {'case':<10} {'time (s)':>9} {'peak extra MiB':>15} "
              f"{'drifted':>8}")
    print(header + "\n" + "-" * len(header))
    summary = []
    for rows in args.sizes:
        with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
            folder = Path(tmp)
            ref, cur = make_frames(rows)
            frames_mib = (ref.memory_usage(deep=True).sum() + cur.memory_usage(deep=True).sum()) / 2**20
            ref.to_parquet(folder / "reference.parquet")
            cur.to_parquet(folder / "current.parquet")
            del ref, cur
            runs = {"floor": (sys.executable, args.repeat, args.rounds),
                    "mlops_wb": (sys.executable, args.repeat, args.rounds),
                    "evidently": (args.evidently_python, 1 if rows >= 1_000_000 else min(args.repeat, 2), 1)}
            results = {case: None for case in runs}
            for round_ in range(args.rounds):  # alternate the cases, so a busy moment on a shared machine hits all
                for case, (python, repeat, rounds) in runs.items():
                    if case not in args.cases or round_ >= rounds:
                        continue
                    res, best = spawn(python, case, folder, repeat), results[case]
                    if res is not None and (best is None or res["seconds"] < best["seconds"]):
                        if best is not None:
                            res["peak_mib"] = max(res["peak_mib"], best["peak_mib"])
                        results[case] = res
                    elif res is not None:
                        best["peak_mib"] = max(res["peak_mib"], best["peak_mib"])
        for case, res in results.items():
            cells = ("not run", "", "") if res is None else (
                f"{res['seconds']:.3f}", f"{res['peak_mib']:.0f}", "" if res["drifted"] is None else res["drifted"])
            print(f"{rows:>10,} {frames_mib:>11.0f} | {case:<10} {cells[0]:>9} {cells[1]:>15} {cells[2]!s:>8}")
        summary.append((rows, frames_mib, results))
    print("\nratios (time):")
    for rows, frames_mib, res in summary:
        ours, floor, ev = res["mlops_wb"], res["floor"], res["evidently"]
        parts = []
        if ours and ev:
            parts.append(f"Evidently / mlops_wb = {ev['seconds'] / ours['seconds']:.0f}x")
        if ours and floor:
            parts.append(f"mlops_wb / floor = {ours['seconds'] / floor['seconds']:.1f}x")
        if ours:
            parts.append(f"mlops_wb peak extra memory = {ours['peak_mib'] / frames_mib:.2f} x the frames")
        print(f"{rows:>10,}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
