"""Workflow overhead on SQLite: an audited, locked, policy-checked promotion against MLflow's bare alias move,
early in a trail and after hundreds of records. Run: .venv/bin/python bench/registry.py [N_VERSIONS]"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"


def ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1000:.0f} ms"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(n: int) -> None:
    from mlops_wb.core import get_client
    from mlops_wb.registry import (
        ApprovalPolicy,
        approve,
        history,
        promote,
        register,
        request_approval,
        rollback,
        verify_audit,
    )

    folder = tempfile.mkdtemp()
    c = get_client(f"sqlite:///{folder}/m.db")
    pol = ApprovalPolicy(approvers=("alice",))
    for i in range(n):
        v = register(f"{folder}/model{i}", "m", user="dana", client=c).version
        request_approval("m", v, user="dana", client=c)
        approve("m", v, approver="alice", comment="x", override="bench", client=c, policy=pol)
    times, bare, sizes = [], [], []
    for i in range(1, n + 1):
        sizes.append(len(history("m", client=c)))
        times.append(timed(lambda i=i: promote("m", i, approver="alice", comment="x", client=c, policy=pol)))
        bare.append(timed(lambda i=i: c.set_registered_model_alias("m", "bare", str(i))))
    records = len(history("m", client=c))
    verified = []
    tv = timed(lambda: verified.append(verify_audit("m", client=c).ok))
    tr = timed(lambda: rollback("m", approver="alice", comment="x", client=c, policy=pol))
    ratio = statistics.median(times[:10]) / statistics.median(bare)
    print("| operation | median | note |\n|---|---|---|")
    print(f"| MLflow `set_registered_model_alias` (anchor: no lock, no policy, no audit) | {ms(bare)} | |")
    print(f"| `promote`, trail of {sizes[0]}-{sizes[9]} records | {ms(times[:10])} | {ratio:.0f}x the anchor |")
    print(f"| `promote`, trail of {sizes[-10]}-{sizes[-1]} records | {ms(times[-10:])} | |")
    print(f"| `rollback`, trail of {records} records | {tr * 1000:.0f} ms | |")
    print(f"| `verify_audit`, {records} records | {tv * 1000:.0f} ms | intact: {verified[0]} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
