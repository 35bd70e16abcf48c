"""Every public drift function that takes frames, on generated frames of every dtype: the reference implementation's
answer (scipy, pandas), or an `MlopsWbError`, and never anything else; and a profile compares equal to its own data.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlops_wb.core import MlopsWbError, load_settings
from mlops_wb.drift import DriftProfile, DriftWarning, compute_drift, drift_over_time

DEFAULTS = load_settings(start=tempfile.mkdtemp())  # built-in defaults, whatever settings.ini is around
EXAMPLES = int(os.environ.get("MLOPS_WB_TEST_EXAMPLES", "120"))  # a developer's deeper search: more
PROPS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


@st.composite
def column(draw, n: int) -> pd.Series:
    "A column of n values of any dtype drift meets: ints of every width at their extremes, floats with inf and NaN, "
    "bools, nullable Int/Float/boolean, strings, categoricals, datetimes, mixed objects."
    kind = draw(st.sampled_from(["int", "int_few", "float", "float32", "bool", "Int", "Float", "boolean", "str",
                                 "object_str", "category", "datetime", "datetime_tz", "mixed", "none"]))
    if kind in ("int", "int_few"):
        dtype = draw(st.sampled_from(INT_DTYPES))
        info = np.iinfo(dtype)
        edge = st.sampled_from([int(info.min), int(info.max), int(info.max) - 1, 0, 1])
        pool = edge if kind == "int_few" else st.integers(int(info.min), int(info.max)) | edge
        return pd.Series(np.array(draw(st.lists(pool, min_size=n, max_size=n)), dtype=dtype))
    if kind in ("float", "float32"):
        values = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32 if kind == "float32" else 64)
                               | st.sampled_from([0.0, 1.0, -1.5, 1e308, -1e308]), min_size=n, max_size=n))
        with np.errstate(over="ignore"):  # 1e308 as float32 is inf
            return pd.Series(np.array(values, dtype=np.float64).astype(kind if kind == "float32" else "float64"))
    if kind == "bool":
        return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if kind in ("Int", "Float", "boolean"):
        base = {"Int": st.integers(-2**63, 2**63 - 1) | st.integers(-3, 3), "Float": st.floats(-1e6, 1e6),
                "boolean": st.booleans()}[kind]
        values = draw(st.lists(base | st.none(), min_size=n, max_size=n))
        return pd.Series(pd.array(values, dtype={"Int": "Int64", "Float": "Float64", "boolean": "boolean"}[kind]))
    text = st.sampled_from(["a", "b", "<c>", "é", "", "x y"]) | st.text(max_size=4)
    if kind in ("str", "object_str"):
        values = draw(st.lists(text | st.none(), min_size=n, max_size=n))
        return pd.Series(values, dtype="str" if kind == "str" else object)
    if kind == "category":
        return pd.Series(pd.Categorical(draw(st.lists(st.sampled_from(["p", "q", "r", None]), min_size=n, max_size=n))))
    if kind in ("datetime", "datetime_tz"):
        ns = draw(st.lists(st.integers(0, 2**62) | st.none(), min_size=n, max_size=n))
        t = pd.to_datetime(pd.Series(ns, dtype="Int64"), unit="ns")
        return t.dt.tz_localize("Europe/Oslo") if kind == "datetime_tz" else t
    if kind == "none":
        return pd.Series([None] * n, dtype=object)
    values = draw(st.lists(st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False) | text | st.none()
                           | st.booleans(), min_size=n, max_size=n))
    return pd.Series(values, dtype=object)


@st.composite
def frames(draw, min_rows: int = 1, max_rows: int = 40, names: tuple = ("a", "b", "c", "d", "e")) -> pd.DataFrame:
    n = draw(st.integers(min_rows, max_rows))
    cols = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    return pd.DataFrame({c: draw(column(n)).reset_index(drop=True) for c in cols})


def quietly(func, *args, **kwargs):
    "Call func without drift warnings; return its result or the MlopsWbError it raised (anything else fails)."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DriftWarning)
        try:
            return func(*args, **kwargs)
        except MlopsWbError as e:
            return e


def finite(series: pd.Series) -> np.ndarray:
    "The reference implementation of a numeric column's values: pandas to float64, finite ones only."
    values = pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.sort(values[np.isfinite(values)])


def counts(series: pd.Series) -> dict:
    "The reference implementation of a categorical column's counts: pandas value_counts, missing values left out."
    return {k: int(v) for k, v in series.value_counts(dropna=True).items() if v > 0}


def check_numeric(got, ref: pd.Series, cur: pd.Series) -> None:
    a, b = finite(ref), finite(cur)
    assert (got.n_reference, got.n_current) == (len(a), len(b))
    assert got.infinite_current == int(np.isinf(pd.to_numeric(cur).to_numpy(np.float64, na_value=np.nan)).sum())
    if not (len(a) and len(b)):
        assert got.test == "none"
        return
    with np.errstate(all="ignore"):
        ks = stats.ks_2samp(a, b)
        assert got.ks_statistic == pytest.approx(ks.statistic, abs=1e-12)
        assert got.ks_p_value == pytest.approx(ks.pvalue, abs=1e-9)
        scale = 2.0**64  # scipy's formula on values scaled by a power of two (exact), so that +-1e308 cannot overflow
        w = stats.wasserstein_distance(a / scale, b / scale) * scale / max(np.std(a), 0.001)
    if math.isfinite(w):
        assert got.wasserstein == pytest.approx(w, rel=1e-9, abs=1e-9)
    ua = np.unique(a)
    if len(ua) <= 20:  # per value
        keys = np.union1d(ua, b)
        rc, cc = [np.array([(x == k).sum() for k in keys]) for x in (a, b)]
    else:  # reference quantiles, closed on the left
        edges = np.unique(np.quantile(a, np.arange(1, 10) / 10))
        rc, cc = [np.diff(np.concatenate([[0], np.searchsorted(x, edges, "left"), [len(x)]])) for x in (a, b)]
    assert got.jensen_shannon == pytest.approx(jensenshannon(rc, cc), abs=1e-9)


def check_categorical(got, ref: pd.Series, cur: pd.Series) -> None:
    rd, cd = counts(ref), counts(cur)
    assert (got.n_reference, got.n_current) == (sum(rd.values()), sum(cd.values()))
    if not (rd and cd):
        assert got.test == "none"
        return
    keys = list(rd) + [k for k in cd if k not in rd]
    rc, cc = np.array([rd.get(k, 0) for k in keys]), np.array([cd.get(k, 0) for k in keys])
    assert got.jensen_shannon == pytest.approx(jensenshannon(rc, cc), abs=1e-9)
    assert got.unseen_categories == sum(1 for k in cd if k not in rd)
    if got.unseen_categories == 0 and len(keys) > 1:
        assert got.chi2_p_value == pytest.approx(stats.chisquare(cc, rc * cc.sum() / rc.sum()).pvalue, abs=1e-9)


# -- compute_drift: the reference implementation's statistics, or a clear error ----------------------------------------
@PROPS
@given(frames(), frames(), st.sampled_from(["auto", "ks", "psi", "jensenshannon", "chisquare"]))
def test_compute_drift_equals_scipy_or_refuses(ref, cur, method):
    report = quietly(compute_drift, reference=ref, current=cur, method=method, settings=DEFAULTS, progress=False)
    if isinstance(report, MlopsWbError):
        assert str(report) and "\n" not in str(report)  # one line
        return
    assert [c.column for c in report] == [c for c in ref.columns if c not in report.skipped]
    for got in report:
        if got.column not in cur.columns:
            assert (got.test, got.drifted) == ("missing", True) and got.column in report.missing_columns
        elif got.kind == "numeric":
            check_numeric(got, ref[got.column], cur[got.column])
        else:
            check_categorical(got, ref[got.column], cur[got.column])
    assert report.n_tested == sum(c.test not in ("none",) for c in report)
    json.loads(report.to_json())  # strict JSON, always


# -- a profile compares equal to its own data, for every dtype ------------------------------------------------------
@PROPS
@given(frames())
def test_a_profile_compares_equal_to_its_own_data(df):
    profile = quietly(DriftProfile.fit, df)
    if isinstance(profile, MlopsWbError):  # only what the raw comparison refuses too
        assert isinstance(quietly(compute_drift, reference=df, current=df, settings=DEFAULTS), MlopsWbError)
        return
    profile = DriftProfile.from_json(profile.to_json())  # through JSON, as a saved profile is used
    via_profile = compute_drift(reference=profile, current=df, settings=DEFAULTS, progress=False)
    raw = compute_drift(reference=df, current=df, settings=DEFAULTS, progress=False)
    assert via_profile.drifted_columns == [] and not via_profile.dataset_drift
    frame = via_profile.to_frame().set_index("column")
    tested = frame[frame.test != "none"]
    assert (tested[["ks_statistic", "wasserstein", "psi", "jensen_shannon"]].fillna(0).abs() < 1e-12).all().all()
    assert ((tested.ks_p_value.fillna(1) == 1) & (tested.chi2_p_value.fillna(1) == 1)).all()
    assert (frame.unseen_categories.fillna(0) == 0).all()
    # and equal to the comparison with the raw data, statistic for statistic (every sketch here is exact)
    pd.testing.assert_frame_equal(frame, raw.to_frame().set_index("column"), rtol=1e-9, atol=1e-12)
    assert via_profile.skipped == raw.skipped
    datetimes = [c for c in df.columns if pd.api.types.is_datetime64_any_dtype(df[c])]
    assert all("not compared" in via_profile.skipped[c] for c in datetimes)  # reported, never silently dropped


def test_uint64_above_2_63_never_drifts_against_itself():
    df = pd.DataFrame({"u": np.array([2**63 + 1, 2**64 - 1, 2**63 + 1, 2**63], dtype="uint64"),
                       "many": np.arange(2**64 - 40, 2**64 - 10, dtype="uint64").repeat(1)[:4]})
    for reference in (DriftProfile.fit(df), DriftProfile.from_json(DriftProfile.fit(df).to_json()), df):
        report = compute_drift(reference=reference, current=df, settings=DEFAULTS)
        assert report.drifted_columns == [] and report["u"].kind == "categorical"
        assert report["u"].unseen_categories == 0 and report["u"].p_value == 1.0


# -- DriftProfile.fit: pandas' counts, or a clear error ----------------------------------------------------------------
@PROPS
@given(frames(min_rows=0))
def test_profile_fit_counts_equal_pandas_or_refuses(df):
    profile = quietly(DriftProfile.fit, df)
    if isinstance(profile, MlopsWbError):  # the only refusals for these frames: no rows, or only datetimes
        assert ("0 rows" in str(profile) and len(df) == 0) or ("can be profiled" in str(profile) and all(
            pd.api.types.is_datetime64_any_dtype(df[c]) for c in df.columns)), str(profile)
        return
    assert profile.n_rows == len(df)
    for name, col in profile.columns.items():
        s = df[name]
        if col.numeric is not None:
            values = pd.to_numeric(s).to_numpy(np.float64, na_value=np.nan)
            assert col.numeric.n == int(np.isfinite(values).sum())
            assert col.numeric.infinite == int(np.isinf(values).sum())
            assert col.missing == len(s) - col.numeric.n
        else:
            assert sorted(col.categories.counts.tolist()) == sorted(counts(s).values())
            assert col.missing == int(s.isna().sum())
    assert DriftProfile.from_json(profile.to_json()).to_dict() == profile.to_dict()


# -- drift_over_time: each window equals compute_drift on its rows, or a clear error -----------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(frames(min_rows=2, max_rows=30, names=("a", "b", "c")), frames(min_rows=2, max_rows=30, names=("a", "b", "c")),
       st.integers(1, 5), st.data())
def test_drift_over_time_equals_compute_drift_per_window(ref, cur, n_chunks, data):
    time_kind = data.draw(st.sampled_from(["int", "datetime", "float_nan", "text", "mixed", "none"]))
    n = len(cur)
    times = {"int": pd.Series(data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))),
             "datetime": pd.Series(pd.date_range("2024-01-01", periods=n, freq="h")),
             "float_nan": pd.Series(data.draw(st.lists(st.floats(0, 5) | st.none(), min_size=n, max_size=n)),
                                    dtype=float),
             "text": pd.Series(data.draw(st.lists(st.sampled_from(["x", "y"]), min_size=n, max_size=n))),
             "mixed": pd.Series(data.draw(st.lists(st.sampled_from([1, "x", 2.5]), min_size=n, max_size=n)),
                                dtype=object),
             "none": pd.Series([None] * n, dtype=object)}[time_kind]
    cur = cur.assign(t=times.to_numpy())
    freq = "1h" if time_kind == "datetime" and data.draw(st.booleans()) else None
    timeline = quietly(drift_over_time, reference=ref, current=cur, time_column="t", settings=DEFAULTS,
                       progress=False, **({"freq": freq} if freq else {"n_chunks": n_chunks}))
    if isinstance(timeline, MlopsWbError):
        assert "\n" not in str(timeline)
        return
    valid = cur[cur.t.notna()]
    order = valid.index[np.argsort(valid.t.to_numpy(), kind="stable")]
    chunks = [np.array([i]) for i in order] if freq else np.array_split(order.to_numpy(), min(n_chunks, len(order)))
    assert timeline.groupby("window")["rows"].first().tolist() == [len(c) for c in chunks]
    for w, rows in enumerate(chunks):
        if not len(rows):
            continue
        want = compute_drift(reference=ref, current=cur.loc[rows].drop(columns="t"), settings=DEFAULTS)
        got = timeline[timeline.window == w].set_index("column")
        for c in want:
            for stat in ("statistic", "p_value", "ks_statistic", "jensen_shannon", "psi"):
                a, b = got.loc[c.column, stat], getattr(c, stat)
                assert (pd.isna(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12), (c.column, stat)
            assert got.loc[c.column, "test"] == c.test
