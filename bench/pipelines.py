"""Pipeline runner overhead and skipping, measured side by side in one run.

1. Raw papermill against our runner on the same notebook (the shipped `train` pipeline notebook, small parameters),
   both executed from this process, alternating, `--repeat` times each; medians.
2. The 5-step demo pipeline (ingest, train, evaluate, register, monitor), cold (fresh store and work folder), then
   warm (unchanged: every step is skipped).

Targets: runner overhead at most 10% over raw papermill; warm pipeline at most 10% of cold.
Run: .venv/bin/python bench/pipelines.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import papermill as pm

    from mlops_wb.core import get_client
    from mlops_wb.pipelines.orchestrate import run_pipeline
    from mlops_wb.pipelines import find_notebook, pipelines_dir, run_notebook

    work = Path(tempfile.mkdtemp(prefix="bench_pipelines_"))
    os.chdir(work)
    (work / "settings.ini").write_text("[approval]\napprovers = demo-approver\nauto_approve = true\n")
    client = get_client(f"sqlite:///{work}/mlflow.db")
    nb = find_notebook("ingest")
    params = {"dataset": "breast_cancer", "out_dir": str(work / "data")}
    # warm both paths once (kernel start-up caches, MLflow schema)
    pm.execute_notebook(str(nb), str(work / "warm.ipynb"), parameters=params, cwd=str(work), progress_bar=False,
                        kernel_name="python3")
    run_notebook(nb, parameters=params, client=client, experiment="bench", cwd=work)
    raw, ours = [], []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        pm.execute_notebook(str(nb), str(work / f"raw{i}.ipynb"), parameters=params, cwd=str(work),
                            progress_bar=False, kernel_name="python3")
        raw.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        run_notebook(nb, parameters=params, client=client, experiment="bench", cwd=work)
        ours.append(time.perf_counter() - t0)
    r, o = statistics.median(raw), statistics.median(ours)
    print(f"notebook: {nb.name} (median of {args.repeat})")
    print(f"{'raw papermill':<28}{r:>8.2f} s")
    print(f"{'mlops_wb run_notebook':<28}{o:>8.2f} s")
    print(f"{'runner overhead':<28}{(o - r) / r:>8.1%}   (target <= 10%: {'met' if (o - r) / r <= 0.10 else 'NOT met'})")

    spec = pipelines_dir() / "demo.yaml"
    t0 = time.perf_counter()
    cold = run_pipeline(spec, client=client, experiment="bench-demo", cwd=work, progress=False)
    tc = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = run_pipeline(spec, client=client, experiment="bench-demo", cwd=work, progress=False)
    tw = time.perf_counter() - t0
    print(f"\n{len(cold.steps)}-step pipeline {spec.name}")
    print(f"{'cold':<28}{tc:>8.2f} s   steps: {', '.join(f'{k}={v.status}' for k, v in cold.steps.items())}")
    print(f"{'warm (unchanged)':<28}{tw:>8.2f} s   steps: {', '.join(f'{k}={v.status}' for k, v in warm.steps.items())}")
    print(f"{'warm / cold':<28}{tw / tc:>8.1%}   (target <= 10%: {'met' if tw / tc <= 0.10 else 'NOT met'})")


if __name__ == "__main__":
    main()
