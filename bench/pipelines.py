"""Pipeline runner overhead and skipping, measured side by side in one run.

1. The command line, whole process: `papermill ingest.ipynb out.ipynb -p ...` against `mlops-wb run ingest -p ...` on
   the same notebook (the shipped `ingest` pipeline), each a fresh process, alternating, `--repeat` times each.
   CPU is user + system time of the whole process tree (the command and the kernel it starts, from os.wait4); wall
   is the command's elapsed time. Medians.
2. The same from Python: `papermill.execute_notebook` against `run_notebook`, in this process.
3. The 5-step demo pipeline (ingest, train, evaluate, register, monitor), cold (fresh store and work folder), then
   warm (unchanged: every step is skipped).

Targets: runner overhead at most 10% over plain papermill, CPU and wall; warm pipeline at most 10% of cold.
Run: .venv/bin/python bench/pipelines.py [--repeat 5] [--skip-pipeline]
The first, untimed, round of each command writes Python's bytecode caches, as an installed package has them.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
BIN = Path(sys.executable).parent


def measure(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    "Wall and CPU seconds (user + system, the command and every process it waited for) of one command."
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()[-3000:]}")
    proc.stderr.close()
    return wall, usage.ru_utime + usage.ru_stime


def command_line(work: Path, repeat: int) -> None:
    from mlops_wb.pipelines import find_notebook

    nb = find_notebook("ingest")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PYTHONDONTWRITEBYTECODE")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    store = f"sqlite:///{work}/cli.db"
    raw = [str(BIN / "papermill"), str(nb), str(work / "raw.ipynb"), "-p", "out_dir", "data-raw", "--no-progress-bar"]
    ours = [str(BIN / "mlops-wb"), "run", "ingest", "-p", "out_dir", "data-ours", "--uri", store, "-e", "bench",
            "--output", str(work / "ours.ipynb")]
    measure(raw, work, env)  # bytecode caches, kernel start-up caches, the store's schema
    measure(ours, work, env)
    runs: dict[str, list[tuple[float, float]]] = {"papermill": [], "mlops-wb run": []}
    for _ in range(repeat):
        runs["papermill"].append(measure(raw, work, env))
        runs["mlops-wb run"].append(measure(ours, work, env))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
    print(f"command line, {nb.name}, median of {repeat} (whole process tree; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f})")
    print(f"{'':<28}{'wall (s)':>10}{'CPU (s)':>10}")
    for k, (w, c) in med.items():
        print(f"{k:<28}{w:>10.2f}{c:>10.2f}")
    (rw, rc), (ow, oc) = med["papermill"], med["mlops-wb run"]
    for what, r, o in (("wall", rw, ow), ("CPU", rc, oc)):
        print(f"{'overhead, ' + what:<28}{(o - r) / r:>10.1%}   (target <= 10%: {'met' if (o - r) / r <= 0.10 else 'NOT met'})")


def in_process(work: Path, repeat: int) -> None:
    import papermill as pm

    from mlops_wb.core import get_client
    from mlops_wb.pipelines import find_notebook, run_notebook

    client = get_client(f"sqlite:///{work}/mlflow.db")
    nb = find_notebook("ingest")
    params = {"dataset": "breast_cancer", "out_dir": str(work / "data")}
    pm.execute_notebook(str(nb), str(work / "warm.ipynb"), parameters=params, cwd=str(work), progress_bar=False)
    run_notebook(nb, parameters=params, client=client, experiment="bench", cwd=work)
    raw, ours = [], []
    for i in range(repeat):
        t0 = time.perf_counter()
        pm.execute_notebook(str(nb), str(work / f"raw{i}.ipynb"), parameters=params, cwd=str(work), progress_bar=False)
        raw.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        run_notebook(nb, parameters=params, client=client, experiment="bench", cwd=work)
        ours.append(time.perf_counter() - t0)
    r, o = statistics.median(raw), statistics.median(ours)
    print(f"\nfrom Python, {nb.name}, median of {repeat} (wall)")
    print(f"{'papermill.execute_notebook':<28}{r:>10.2f}")
    print(f"{'run_notebook':<28}{o:>10.2f}")
    print(f"{'overhead':<28}{(o - r) / r:>10.1%}   (target <= 10%: {'met' if (o - r) / r <= 0.10 else 'NOT met'})")


def pipeline(work: Path) -> None:
    from mlops_wb.core import get_client
    from mlops_wb.pipelines import pipelines_dir
    from mlops_wb.pipelines.orchestrate import run_pipeline

    client = get_client(f"sqlite:///{work}/mlflow.db")
    spec = pipelines_dir() / "demo.yaml"
    t0 = time.perf_counter()
    cold = run_pipeline(spec, client=client, experiment="bench-demo", cwd=work, progress=False)
    tc = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = run_pipeline(spec, client=client, experiment="bench-demo", cwd=work, progress=False)
    tw = time.perf_counter() - t0
    print(f"\n{len(cold.steps)}-step pipeline {spec.name}")
    print(f"{'cold':<28}{tc:>10.2f} s   steps: {', '.join(f'{k}={v.status}' for k, v in cold.steps.items())}")
    print(f"{'warm (unchanged)':<28}{tw:>10.2f} s   steps: {', '.join(f'{k}={v.status}' for k, v in warm.steps.items())}")
    print(f"{'warm / cold':<28}{tw / tc:>10.1%}   (target <= 10%: {'met' if tw / tc <= 0.10 else 'NOT met'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-pipeline", action="store_true", help="only the runner overhead")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_pipelines_"))
    os.chdir(work)
    (work / "settings.ini").write_text("[approval]\napprovers = demo-approver\nauto_approve = true\n")
    command_line(work, args.repeat)
    in_process(work, args.repeat)
    if not args.skip_pipeline:
        pipeline(work)


if __name__ == "__main__":
    main()
