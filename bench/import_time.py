"""Import time of `mlops_wb` beside `mlflow`'s, and the command line's start-up beside papermill's, each measured
in fresh processes in the same run.

Targets: `import mlops_wb` under 10% of `import mlflow`; `mlops-wb --help` and `mlops-wb run --help` no slower than
`papermill --help` (they import neither pandas nor MLflow).
Run: .venv/bin/python bench/import_time.py [--repeat N]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def wall(code: str, repeat: int) -> list[float]:
    "Wall times of `python -c code` in fresh processes."
    return command([sys.executable, "-c", code], repeat)


def command(cmd: list[str], repeat: int) -> list[float]:
    "Wall times of a command in fresh processes."
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    wall("import mlflow, mlops_wb", 1)  # warm the file cache once, for both
    cases = {"python (no import)": "pass", "import mlops_wb": "import mlops_wb, mlops_wb.core",
             "import mlflow": "import mlflow"}
    med = {k: statistics.median(wall(c, args.repeat)) for k, c in cases.items()}
    base = med["python (no import)"]
    ours, theirs = med["import mlops_wb"] - base, med["import mlflow"] - base
    print(f"{'what':<22}{'median wall (s)':>16}{'minus interpreter (s)':>24}")
    for k, v in med.items():
        print(f"{k:<22}{v:>16.3f}{v - base:>24.3f}")
    ratio = ours / theirs
    print(f"\nmlops_wb / mlflow import time: {ratio:.1%}  (target < 10%: {'met' if ratio < 0.10 else 'NOT met'})")

    bin_ = Path(sys.executable).parent
    clis = {"papermill --help": [str(bin_ / "papermill"), "--help"], "mlops-wb --version": [str(bin_ / "mlops-wb"), "--version"],
            "mlops-wb run --help": [str(bin_ / "mlops-wb"), "run", "--help"], "mlops-wb --help": [str(bin_ / "mlops-wb"), "--help"]}
    command(clis["mlops-wb --help"], 1)
    times = {k: statistics.median(command(c, args.repeat)) for k, c in clis.items()}
    print(f"\n{'command line start-up':<22}{'median wall (s)':>16}")
    for k, v in times.items():
        print(f"{k:<22}{v:>16.3f}")
    slow = [k for k in ("mlops-wb --version", "mlops-wb run --help", "mlops-wb --help") if times[k] > times["papermill --help"]]
    print(f"mlops-wb help against papermill's: {'met' if not slow else 'NOT met for ' + ', '.join(slow)}")


if __name__ == "__main__":
    main()
