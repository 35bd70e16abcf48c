"""Workflow overhead on SQLite: an audited, locked, policy-checked promotion against MLflow's bare alias move,
early in a trail and after hundreds of records. Run: .venv/bin/python bench/registry.py [N_VERSIONS]"""
import os, sys, tempfile, time, statistics, warnings
warnings.filterwarnings("ignore"); os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
from mlops_wb.core import get_client
from mlops_wb.registry import ApprovalPolicy, register, request_approval, approve, promote, rollback, verify_audit, history
N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
d = tempfile.mkdtemp(); uri = f"sqlite:///{d}/m.db"; c = get_client(uri)
pol = ApprovalPolicy(approvers=("alice",))
for i in range(N):
    v = register(f"{d}/model{i}", "m", user="dana", client=c).version
    request_approval("m", v, user="dana", client=c)
    approve("m", v, approver="alice", comment="x", override="bench", client=c, policy=pol)
times, bare, sizes = [], [], []
for i in range(1, N + 1):
    sizes.append(len(history("m", client=c)))
    s = time.perf_counter(); promote("m", i, approver="alice", comment="x", client=c, policy=pol); times.append(time.perf_counter() - s)
    s = time.perf_counter(); c.set_registered_model_alias("m", "bare", str(i)); bare.append(time.perf_counter() - s)
n = len(history("m", client=c))
s = time.perf_counter(); ok = verify_audit("m", client=c).ok; tv = time.perf_counter() - s
s = time.perf_counter(); rollback("m", approver="alice", comment="x", client=c, policy=pol); tr = time.perf_counter() - s
ms = lambda xs: f"{statistics.median(xs) * 1000:.0f} ms"
print("| operation | median | note |\n|---|---|---|")
print(f"| MLflow `set_registered_model_alias` (anchor: no lock, no policy, no audit) | {ms(bare)} | |")
print(f"| `promote`, trail of {sizes[0]}-{sizes[9]} records | {ms(times[:10])} | {statistics.median(times[:10]) / statistics.median(bare):.0f}x the anchor |")
print(f"| `promote`, trail of {sizes[-10]}-{sizes[-1]} records | {ms(times[-10:])} | |")
print(f"| `rollback`, trail of {n} records | {tr * 1000:.0f} ms | |")
print(f"| `verify_audit`, {n} records | {tv * 1000:.0f} ms | intact: {ok} |")
