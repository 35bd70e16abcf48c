"""Distributed drift on a real `dask.distributed.LocalCluster` of worker processes: the merged partition profiles
give exactly the binned statistics pandas gives on the same data, the tasks really run on several workers, and an
error in one partition says which."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

N_ROWS, N_PARTS = 120_000, 7


@pytest.fixture(scope="module")
def dask_client():
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=3, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0",
                      memory_limit="2GiB") as cluster, Client(cluster) as client:
        yield client


def _data(seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = N_ROWS
    x = rng.standard_t(3, n) + shift  # far more than 2,048 distinct values: sketched
    x[rng.random(n) < 0.02] = np.nan
    y = rng.lognormal(0, 1.5, n)
    y[: n // N_PARTS] = np.nan  # the first partition holds no value of y at all
    return pd.DataFrame({
        "x": x, "y": y,
        "level": rng.integers(0, 6, n),  # small integers: categorical
        "count": rng.integers(0, 1500, n),  # integers with many values: numeric, held exactly
        "city": rng.choice(["Oslo", "Lima", "Pune", "Kobe"], n, p=[0.4, 0.3, 0.2, 0.1]),
        "grade": pd.Categorical(rng.choice(list("ABC"), n)),
        "when": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 10**6, n), "s"),  # not compared
    })


def _without_moments(profile) -> tuple[dict, list]:
    d = json.loads(profile.to_json())
    moments = [(c["name"], c["numeric"].pop("mean"), c["numeric"].pop("m2")) for c in d["columns"] if c["numeric"]]
    return d, moments


def test_cluster_profile_equals_the_pandas_profile(dask_client):
    import dask.dataframe as dd
    from distributed import get_task_stream

    from mlops_wb.drift import DriftProfile

    df = _data()
    ddf = dd.from_pandas(df, npartitions=N_PARTS, sort=False)
    with get_task_stream(dask_client) as ts:
        profile = DriftProfile.fit(ddf)
    workers = {t["worker"] for t in ts.data if str(t["key"]).startswith("fit_partition")}
    assert len(workers) >= 2, f"the partitions were profiled on {workers}, expected several workers"
    assert profile.n_rows == N_ROWS and list(profile.skipped) == ["when"]
    whole = DriftProfile.fit(df)
    assert profile.kinds == whole.kinds == {"x": "numeric", "y": "numeric", "level": "categorical",
                                            "count": "numeric", "city": "categorical", "grade": "categorical"}
    got, got_m = _without_moments(profile)
    want, want_m = _without_moments(whole)
    assert got == want  # every count, bucket, category, minimum and maximum
    for (name, m1, v1), (_, m2, v2) in zip(got_m, want_m, strict=True):
        assert (m1 is None and m2 is None) or (math.isclose(m1, m2, rel_tol=1e-9, abs_tol=1e-12)
                                               and math.isclose(v1, v2, rel_tol=1e-9)), name
    assert not profile.columns["x"].numeric.exact and profile.columns["count"].numeric.exact


def test_compute_drift_on_the_cluster_gives_the_pandas_statistics(dask_client):
    import dask.dataframe as dd

    from mlops_wb.drift import DriftProfile, compute_drift

    df, cur = _data(), _data(seed=1, shift=0.3).iloc[:40_000]
    ddf = dd.from_pandas(df, npartitions=N_PARTS, sort=False)
    on_cluster = compute_drift(reference=ddf, current=dd.from_pandas(cur, npartitions=3))
    assert on_cluster.reference_type == f"Dask DataFrame, profiled from {N_PARTS} partitions"
    assert on_cluster.n_reference == N_ROWS and on_cluster.n_current == 40_000
    assert "when" not in [c.column for c in on_cluster]
    # the same binned statistics as pandas through a profile of the same data...
    whole = DriftProfile.fit(df)
    local = compute_drift(reference=whole, current=cur)
    # ...and as the raw pandas reference, for every column the sketch holds exactly
    raw = compute_drift(reference=df, current=cur)
    for c, p, r in zip(on_cluster, local, raw, strict=True):
        assert c.column == p.column == r.column and c.test == p.test == r.test
        assert c.plot.get("bins") == p.plot.get("bins") and c.plot.get("categories") == p.plot.get("categories")
        for stat in ("psi", "jensen_shannon", "chi2_p_value", "ks_statistic", "unseen_categories", "missing_reference"):
            a, b = getattr(c, stat), getattr(p, stat)
            assert (math.isnan(a) and math.isnan(b)) or a == b, (c.column, stat, a, b)
        assert c.drifted == p.drifted
        sketch = whole.columns[c.column].numeric
        if sketch is None or sketch.exact:  # held exactly: the same as the raw pandas reference
            for stat in ("psi", "jensen_shannon", "chi2_p_value", "ks_statistic"):
                a, b = getattr(c, stat), getattr(r, stat)
                assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), \
                    (c.column, stat, a, b)
        else:  # sketched: within the bounds the report prints
            assert abs(c.ks_statistic - r.ks_statistic) <= c.ks_error + 1e-12
            assert abs(c.wasserstein - r.wasserstein) <= c.wasserstein_error + 1e-9
    assert on_cluster["x"].drifted and not on_cluster["city"].drifted


def test_a_bad_partition_is_named(dask_client):
    import dask.dataframe as dd

    from mlops_wb.core import InvalidParameterError
    from mlops_wb.drift import DriftProfile

    from dask import delayed

    df = _data()[["x", "city"]]
    parts = [df.iloc[i] for i in np.array_split(np.arange(len(df)), N_PARTS)]
    parts[-1] = parts[-1].assign(x="oops")  # text where the other partitions hold numbers (a bad file, say)
    ddf = dd.from_delayed([delayed(p) for p in parts], meta=df.iloc[:0], verify_meta=False)
    with pytest.raises(InvalidParameterError, match=rf"In partition {N_PARTS - 1} of {N_PARTS}: .*'x' is text"):
        DriftProfile.fit(ddf, numerical=["x"])
    with pytest.raises(InvalidParameterError, match="'nope'"):
        DriftProfile.fit(ddf, columns=["nope"])


def test_console_script_profiles_a_parquet_folder_on_the_cluster(dask_client, tmp_path):
    import subprocess

    from conftest import BIN, clean_env
    from mlops_wb.drift import DriftProfile

    df = _data()[["x", "level", "city"]]
    folder = tmp_path / "reference"
    folder.mkdir()
    for i, chunk in enumerate(np.array_split(np.arange(len(df)), 5)):
        df.iloc[chunk].to_parquet(folder / f"part-{i}.parquet")
    address = dask_client.scheduler.address
    r = subprocess.run([str(BIN / "mlops-wb"), "drift-profile", str(folder), str(tmp_path / "p.json"),
                        "--scheduler", address], cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    got, _ = _without_moments(DriftProfile.load(tmp_path / "p.json"))
    want, _ = _without_moments(DriftProfile.fit(df))
    assert got == want
    _data(seed=3, shift=0.5)[["x", "level", "city"]].iloc[:5000].to_csv(tmp_path / "batch.csv", index=False)
    r = subprocess.run([str(BIN / "mlops-wb"), "drift", str(folder / "*.parquet"), str(tmp_path / "batch.csv"),
                        "--scheduler", address, "--fail-on-drift", "--drift-share", "0.3"], cwd=tmp_path, env=clean_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "(Dask DataFrame, profiled from 5 partitions)" in r.stdout and "120,000 rows" in r.stdout, r.stdout
