"""Import time of `mlops_wb` beside `mlflow`'s, each measured in fresh processes in the same run.

Target: `import mlops_wb` under 10% of `import mlflow`.
Run: .venv/bin/python bench/import_time.py [--repeat N]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def wall(code: str, repeat: int) -> list[float]:
    "Wall times of `python -c code` in fresh processes."
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
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


if __name__ == "__main__":
    main()
