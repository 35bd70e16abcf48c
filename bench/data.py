"""Data benchmarks: our fingerprint beside pandas' hash_pandas_object and MLflow's own pandas digest; validation
beside pandera (when installed: the bench extra has it) on the same 1M-row frame and checks.

Run: .venv/bin/python bench/data.py
"""
import time
import warnings

import numpy as np
import pandas as pd

from mlops_wb.data import fingerprint, infer_schema, validate

warnings.filterwarnings("ignore")


def best(f, n=3):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


rng = np.random.default_rng(0)
N = 1_000_000
df = pd.DataFrame({"a": rng.normal(size=N), "b": rng.integers(0, 100, N), "e": rng.normal(size=N) * 100,
                   "c": pd.Series(rng.choice(["red", "green", "blue"], N), dtype="str"),
                   "d": pd.Categorical(rng.choice(["x", "y"], N)), "f": np.where(rng.random(N) < 0.05, np.nan, 1.0)})
rows = [("fingerprint (mlops_wb, sha256 of canonical bytes)", best(lambda: fingerprint(df)))]
rows.append(("pandas.util.hash_pandas_object(df).sum()", best(lambda: pd.util.hash_pandas_object(df).sum())))
from mlflow.data.digest_utils import compute_pandas_digest  # noqa: E402

rows.append(("mlflow compute_pandas_digest (first 10k rows only)", best(lambda: compute_pandas_digest(df))))
schema = infer_schema(df)
rows.append(("infer_schema (mlops_wb)", best(lambda: infer_schema(df))))
rows.append(("validate, clean frame (mlops_wb)", best(lambda: validate(df, schema))))
bad = df.assign(a=df["a"] * 3, c=df["c"].where(rng.random(N) > 0.01, "purple"))
rows.append(("validate, frame with findings (mlops_wb)", best(lambda: validate(bad, schema))))
try:
    import pandera.pandas as pa

    ps = pa.DataFrameSchema({
        "a": pa.Column(float, pa.Check.in_range(schema.column("a").min, schema.column("a").max)),
        "b": pa.Column(int, pa.Check.in_range(schema.column("b").min, schema.column("b").max)),
        "e": pa.Column(float, pa.Check.in_range(schema.column("e").min, schema.column("e").max)),
        "c": pa.Column(str, pa.Check.isin(["red", "green", "blue"])),
        "d": pa.Column("category", pa.Check.isin(["x", "y"])),
        "f": pa.Column(float, nullable=True)})

    def pandera_validate(frame):
        try:
            ps.validate(frame, lazy=True)
        except pa.errors.SchemaErrors:
            pass

    rows.append(("pandera 0.35 validate(lazy=True), clean frame", best(lambda: pandera_validate(df))))
    rows.append(("pandera 0.35 validate(lazy=True), frame with findings", best(lambda: pandera_validate(bad))))
except ImportError:
    rows.append(("pandera (not installed)", float("nan")))
print(f"1,000,000 rows x {df.shape[1]} columns (float, int, str, category, float with nulls); best of 3\n")
print("| what | seconds |\n| --- | --- |")
for name, t in rows:
    print(f"| {name} | {t:.3f} |")
