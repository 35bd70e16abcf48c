"""Property tests of the drift engine: identical data never drifts, row order never matters, profiles merge exactly."""
from __future__ import annotations

import json
import math
import tempfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlops_wb.core import InvalidParameterError, get_client, load_settings
from mlops_wb.drift import (
    chi2_goodness_of_fit,
    jensen_shannon,
    ks_statistic_sorted,
    wasserstein_sorted,
    z_test,
)
from mlops_wb.drift import DriftProfile, DriftReport, compute_drift  # the lazy re-exports
from mlops_wb.drift.report import FRAME_COLUMNS, metric_names

DEFAULTS = load_settings(start=tempfile.mkdtemp())  # built-in defaults, whatever settings.ini is around
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
numbers = st.lists(st.one_of(finite, st.integers(-5, 5).map(float)), min_size=1, max_size=300)
maybe_missing = st.lists(st.one_of(finite, st.integers(-3, 3).map(float), st.none()), min_size=1, max_size=200)
words = st.sampled_from(["a", "b", "c", "<d>", "é", "x y"])


@st.composite
def frames(draw, min_rows: int = 1, max_rows: int = 200) -> pd.DataFrame:
    "A frame with a float column (with missing values), an integer column and a text column."
    n = draw(st.integers(min_rows, max_rows))
    floats = draw(st.lists(st.one_of(finite, st.none()), min_size=n, max_size=n))
    ints = draw(st.lists(st.integers(-1000, 1000), min_size=n, max_size=n))
    text = [draw(words)] + draw(st.lists(st.one_of(words, st.none()), min_size=n - 1, max_size=n - 1))
    return pd.DataFrame({"x": pd.Series(floats, dtype=float), "k": ints, "s": pd.Series(text, dtype=object)})


# -- the kernels equal scipy on arbitrary data ----------------------------------------------------------------------
@FAST
@given(numbers, numbers)
def test_kernels_equal_scipy(a, b):
    a, b = np.sort(np.array(a)), np.sort(np.array(b))
    assert abs(ks_statistic_sorted(a, b) - stats.ks_2samp(a, b).statistic) < 1e-12
    want = stats.wasserstein_distance(a, b)
    assert math.isclose(wasserstein_sorted(a, b), want, rel_tol=1e-9, abs_tol=1e-9 * max(1.0, np.abs(a).max()))


@FAST
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)).filter(lambda t: t != (0, 0)), min_size=2,
                max_size=12).filter(lambda rows: sum(r for r, _ in rows) > 0 and sum(c for _, c in rows) > 0))
def test_count_statistics_equal_scipy(rows):
    ref, cur = np.array([r for r, _ in rows]), np.array([c for _, c in rows])
    # Jensen-Shannon in natural log: scipy's default base, and Evidently's scale
    assert abs(jensen_shannon(ref, cur) - jensenshannon(ref, cur)) < 1e-9
    assert abs(jensen_shannon(ref, cur) - jensenshannon(ref, cur, base=2) * math.sqrt(math.log(2))) < 1e-9
    stat, p = chi2_goodness_of_fit(ref, cur)
    if (cur[ref == 0] > 0).any():  # a category the reference never had
        assert (stat, p) == (math.inf, 0.0)
    else:
        seen = ref > 0
        want = stats.chisquare(cur[seen], ref[seen] * cur.sum() / ref.sum())
        assert math.isclose(stat, want.statistic, rel_tol=1e-9, abs_tol=1e-9) and abs(p - want.pvalue) < 1e-9
    if len(rows) == 2:
        z, p = z_test(ref, cur)
        want = stats.chi2_contingency(np.array([ref, cur]), correction=False)
        assert math.isclose(z * z, want.statistic, rel_tol=1e-9, abs_tol=1e-9) and abs(p - want.pvalue) < 1e-9


# -- identical frames never drift -------------------------------------------------------------------------------------
@FAST
@given(frames(), st.sampled_from(["auto", {"x": "ks", "k": "psi"}, {"x": "wasserstein", "s": "jensenshannon"},
                                  {"x": "jensenshannon", "s": "chisquare"}]))
def test_identical_frames_never_drift(df, method):
    report = compute_drift(reference=df, current=df.copy(), method=method, settings=DEFAULTS)
    assert report.drifted_columns == [] and not report.dataset_drift
    frame = report.to_frame().set_index("column")
    tested = frame[frame.test != "none"]
    assert (tested[["ks_statistic", "wasserstein", "psi", "jensen_shannon"]].fillna(0).abs() < 1e-12).all().all()
    assert ((tested.ks_p_value.fillna(1) == 1) & (tested.chi2_p_value.fillna(1) == 1)).all()
    assert (frame.unseen_categories.fillna(0) == 0).all()
    # a column all missing on both sides is reported, not tested
    assert set(frame.index[frame.test == "none"]) <= {c for c in df.columns if df[c].isna().all()}


# -- shuffling rows changes nothing -----------------------------------------------------------------------------------
@FAST
@given(frames(), frames(), st.randoms(use_true_random=False))
def test_row_order_changes_nothing(ref, cur, rnd):
    base = compute_drift(reference=ref, current=cur, settings=DEFAULTS).to_frame()
    ref2 = ref.iloc[rnd.sample(range(len(ref)), len(ref))]
    cur2 = cur.iloc[rnd.sample(range(len(cur)), len(cur))]
    shuffled = compute_drift(reference=ref2, current=cur2, settings=DEFAULTS).to_frame()
    pd.testing.assert_frame_equal(base, shuffled, check_exact=True)


# -- profiles of halves merge into the whole's profile -----------------------------------------------------------------
@FAST
@given(frames(min_rows=2, max_rows=300), frames(min_rows=1, max_rows=100), st.data(),
       st.sampled_from([32, 64, 2048]))
def test_merged_half_profiles_give_the_wholes_binned_statistics(ref, cur, data, max_buckets):
    cut = data.draw(st.integers(1, len(ref) - 1))
    whole = DriftProfile.fit(ref, max_buckets=max_buckets)
    halves = DriftProfile.fit(ref.iloc[:cut], max_buckets=max_buckets).merge(
        DriftProfile.fit(ref.iloc[cut:], max_buckets=max_buckets))
    # the summaries are equal count for count (moments to rounding)
    for name, col in whole.columns.items():
        a, b = col.to_dict(), halves.columns[name].to_dict()
        if a["numeric"] is not None and b["numeric"] is not None:
            for k in ("mean", "m2"):
                x, y = a["numeric"].pop(k), b["numeric"].pop(k)
                assert (x is None and y is None) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-6)
        assert a == b
    assert whole.kinds == halves.kinds
    r1 = compute_drift(reference=whole, current=cur, settings=DEFAULTS)
    r2 = compute_drift(reference=halves, current=cur, settings=DEFAULTS)
    for c1, c2 in zip(r1, r2, strict=True):
        assert c1.plot.get("bins") == c2.plot.get("bins") and c1.plot.get("categories") == c2.plot.get("categories")
        for stat in ("psi", "jensen_shannon", "chi2_p_value", "ks_statistic", "unseen_categories"):
            x, y = getattr(c1, stat), getattr(c2, stat)
            assert (math.isnan(x) and math.isnan(y)) or x == y, (c1.column, stat, x, y)


def _split_moments(profile: DriftProfile) -> tuple[dict, list]:
    "A profile's dict without the numeric moments (equal only to rounding), and the moments apart."
    d = json.loads(profile.to_json())
    moments = []
    for col in d["columns"]:
        if col["numeric"]:
            moments.append((col["numeric"].pop("mean"), col["numeric"].pop("m2")))
    return d, moments


def test_profile_merge_is_order_free_and_partition_free():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.standard_t(3, 20_000), "y": rng.exponential(5, 20_000),
                       "c": rng.choice(list("pqrs"), 20_000)})
    whole, whole_moments = _split_moments(DriftProfile.fit(df))
    for parts in (4, 7):
        chunks = [DriftProfile.fit(df.iloc[i]) for i in np.array_split(np.arange(len(df)), parts)]
        for merged in (DriftProfile.merge_all(chunks), DriftProfile.merge_all(chunks[::-1])):
            got, moments = _split_moments(merged)
            assert got == whole
            np.testing.assert_allclose(moments, whole_moments, rtol=1e-9)


# -- approximations stay within their reported bounds ------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda r, n: r.normal(size=n), lambda r, n: r.lognormal(0, 2, n),
                                  lambda r, n: 1e9 + r.normal(size=n), lambda r, n: r.integers(0, 5000, n) * 0.5])
def test_profile_statistics_within_bounds(make):
    rng = np.random.default_rng(4)
    ref, cur = pd.DataFrame({"x": make(rng, 50_000)}), pd.DataFrame({"x": make(rng, 40_000) * 1.01})
    exact = compute_drift(reference=ref, current=cur, settings=DEFAULTS)["x"]
    approx = compute_drift(reference=DriftProfile.fit(ref), current=cur, settings=DEFAULTS)["x"]
    assert abs(approx.ks_statistic - exact.ks_statistic) <= approx.ks_error + 1e-12
    assert abs(approx.wasserstein - exact.wasserstein) <= approx.wasserstein_error + 1e-9
    assert approx.ks_error < 0.02


# -- reports round-trip and log to MLflow ------------------------------------------------------------------------------
def test_report_round_trip_and_mlflow(tracking_uri):
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"a/b": rng.normal(size=2000), "<c>": rng.choice(["u", "v"], 2000)})
    cur = pd.DataFrame({"a/b": rng.normal(1, size=1500), "<c>": rng.choice(["u", "v", "w"], 1500)})
    report = compute_drift(reference=ref, current=cur, settings=DEFAULTS)
    assert list(report.to_frame().columns) == list(FRAME_COLUMNS)
    back = DriftReport.from_json(report.to_json())
    pd.testing.assert_frame_equal(back.to_frame(), report.to_frame())
    assert back.to_dict() == json.loads(report.to_json())
    client = get_client(tracking_uri)
    run_id = report.log_to_mlflow(client=client, experiment="drift")
    run = client.get_run(run_id)
    keys = metric_names(["a/b", "<c>"])
    assert run.data.metrics[f"drift.{keys['a/b']}.wasserstein"] == pytest.approx(report["a/b"].wasserstein)
    assert run.data.metrics[f"drift.{keys['<c>']}.unseen_categories"] == 1.0
    assert run.data.metrics["drift.n_drifted"] == report.n_drifted
    files = {f.path for f in client.list_artifacts(run_id, "drift")}
    assert files == {"drift/drift_report.json", "drift/drift_report.html"}


def test_errors_name_the_problem():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(InvalidParameterError, match="no columns in common"):
        compute_drift(reference=df, current=pd.DataFrame({"y": [1]}), settings=DEFAULTS)
    infinite = compute_drift(reference=df, current=df.assign(x=[1, np.inf, 2]), settings=DEFAULTS)["x"]
    assert (infinite.n_current, infinite.infinite_current) == (2, 1)  # left out as missing, as Evidently does
    with pytest.raises(InvalidParameterError, match="float in the reference but text"):
        compute_drift(reference=df, current=df.assign(x=["a", "b", "c"]), settings=DEFAULTS)
    with pytest.raises(InvalidParameterError, match="0 rows"):
        compute_drift(reference=df.iloc[:0], current=df, settings=DEFAULTS)
    with pytest.raises(TypeError):
        compute_drift(df, df)  # reference and current are keyword-only
