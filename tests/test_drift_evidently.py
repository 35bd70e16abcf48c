"""Evidently's statistical-test cases, ported: our statistics and drift decisions equal Evidently's on the same data.

Evidently cannot be installed beside our plotly and pandas (it pins plotly<6 and pandas<3), so its numbers come from
two places, named in each test:

- **its own test expectations**, copied from Evidently's test suite (`tests/stattests/test_stattests.py`,
  `tests/stattests/test_registry.py`, `tests/calculations/test_data_drift.py`; legacy stattests);
- **scipy computing Evidently's formula** (`ev_*` below, written from Evidently's definitions: `ks_2samp`,
  `wasserstein_distance / max(std, 0.001)`, `chisquare(cur, ref * n_cur / n_ref)`, the pooled two-proportion z-test,
  `jensenshannon` in its default natural log over Evidently's bins, PSI with Evidently's smoothing of empty bins,
  and its default test selection `get_stattest`).

Where we differ on purpose, a test named `test_difference_*` shows the difference; the README lists them.
"""
from __future__ import annotations

import math
import tempfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlops_wb.core import InvalidParameterError, load_settings
from mlops_wb.drift import DriftProfile, compute_drift

DEFAULTS = load_settings(start=tempfile.mkdtemp())  # built-in defaults, whatever settings.ini is around
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def one(ref, cur, **kw):
    "The result of compute_drift on one column named 'x'."
    return compute_drift(reference=pd.DataFrame({"x": ref}), current=pd.DataFrame({"x": cur}), settings=DEFAULTS,
                         **kw)["x"]


# -- Evidently's formulas, computed by scipy -------------------------------------------------------------------------
def ev_binned(ref: pd.Series, cur: pd.Series, numeric: bool, fill_zeros: bool) -> tuple[np.ndarray, np.ndarray]:
    "Evidently's get_binned_data: Sturges bins over both sides for numeric columns of over 20 values, else per value."
    if numeric and ref.nunique() > 20:
        edges = np.histogram_bin_edges(pd.concat([ref, cur]).to_numpy(), bins="sturges")
        r, c = np.histogram(ref, edges)[0] / len(ref), np.histogram(cur, edges)[0] / len(cur)
    else:
        keys = sorted(set(ref.dropna()) | set(cur.dropna()), key=str)
        r = np.array([(ref == k).sum() for k in keys]) / len(ref)
        c = np.array([(cur == k).sum() for k in keys]) / len(cur)
    if fill_zeros:
        for shares in (r, c):
            smallest = shares[shares > 0].min()
            shares[shares == 0] = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    return r, c


def ev_psi(ref: pd.Series, cur: pd.Series, numeric: bool) -> float:
    r, c = ev_binned(ref, cur, numeric, True)
    return float(np.sum((r - c) * np.log(r / c)))


def ev_jensenshannon(ref: pd.Series, cur: pd.Series, numeric: bool) -> float:
    r, c = ev_binned(ref, cur, numeric, False)
    return float(jensenshannon(r, c))  # scipy's default base: e


def ev_wasserstein(ref: pd.Series, cur: pd.Series) -> float:
    return float(stats.wasserstein_distance(ref, cur) / max(np.std(ref.to_numpy()), 0.001))


def ev_chisquare(ref: pd.Series, cur: pd.Series) -> float:
    keys = sorted(set(ref) | set(cur), key=str)
    expected = np.array([(ref == k).sum() for k in keys]) * len(cur) / len(ref)
    observed = np.array([(cur == k).sum() for k in keys])
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(observed, expected).pvalue)


def ev_z(ref: pd.Series, cur: pd.Series) -> float:
    if ref.nunique() == 1 and cur.nunique() == 1 and ref.iloc[0] == cur.iloc[0]:
        return 1.0
    first = sorted(set(ref) | set(cur), key=str)[0]
    a, b = (ref != first).astype(float), (cur != first).astype(float)
    pooled = (a.sum() + b.sum()) / (len(a) + len(b))
    z = (a.mean() - b.mean()) / math.sqrt(pooled * (1 - pooled) * (1 / len(a) + 1 / len(b)))
    return float(2 * (1 - stats.norm.cdf(abs(z))))


def ev_default_test(ref: pd.Series, cur: pd.Series, numeric: bool) -> str:
    "Evidently's get_stattest(..., stattest_func=None) on the non-missing values."
    n_values = pd.concat([ref, cur]).nunique()
    if len(ref) <= 1000:
        if numeric and n_values > 5:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    if numeric and n_values > 5:
        return "wasserstein"
    return "jensenshannon"


# -- Evidently's own expectations: tests/stattests/test_stattests.py ---------------------------------------------------
SIX = pd.Series([1, 2, 3, 4, 5, 6])


@pytest.mark.parametrize("reference", [SIX.repeat([16, 18, 16, 14, 12, 12]),
                                       SIX.repeat([x * 2 for x in [16, 18, 16, 14, 12, 12]])])
def test_chisquare_freq_obs_against_freq_exp(reference):
    "test_freq_obs_eq_freq_exp and test_freq_obs_not_eq_freq_exp: p = 0.67309, not drifted at threshold 0.5."
    got = one(reference, SIX.repeat([16, 16, 16, 16, 16, 8]), method="chisquare", threshold=0.5)
    assert got.p_value == pytest.approx(0.67309, abs=1e-5) and not got.drifted
    assert got.chi2_p_value == got.p_value


@pytest.mark.parametrize("values", [["a", "b", np.nan], ["a", "b", "c"]])
def test_chisquare_on_equal_categories(values):
    "test_cat_feature_with_nans and test_chi_stat_test_cat_feature: p = 1.0, missing values left out."
    series = pd.Series(values).repeat([10, 10, 10])
    got = one(series, series.copy(), method="chisquare", threshold=0.5)
    assert got.p_value == pytest.approx(1.0, abs=1e-5) and not got.drifted


def test_z_test_on_equal_binary_categories():
    "test_z_stat_test_cat_feature, first case: p = 1.0, not drifted at threshold 0.5."
    got = one(pd.Series(["a", "b"] * 10), pd.Series(["a", "b"] * 10), method="z", threshold=0.5)
    assert (got.test, got.p_value, got.drifted) == ("z", pytest.approx(1.0, abs=1e-5), False)


def test_difference_z_test_of_a_column_with_missing_values():
    """test_z_stat_test_cat_feature, second case: Evidently's z function, called on a series with NaN, counts NaN as
    the second category (p = 1.0). Evidently's drift report drops missing values before the test, as we do, so we
    equal its report (p from ev_z on the non-missing values), not that direct call."""
    ref, cur = pd.Series(["a", np.nan] * 10), pd.Series(["a", "b"] * 10)
    got = one(ref, cur, method="z", threshold=0.5)
    assert got.p_value == pytest.approx(ev_z(ref.dropna(), cur), abs=1e-12)
    assert got.p_value < 0.01 and got.drifted  # 10 'a' against 10 'a' and 10 'b'


# -- Evidently's own expectations: tests/stattests/test_registry.py (default test selection) ---------------------------
@pytest.mark.parametrize("reference, kind, expected", [
    (pd.Series([1.0] * 10), "num", "z"),
    (pd.Series(range(1, 12)), "num", "ks"),
    (pd.Series(list(range(1, 12)) * 1000), "num", "wasserstein"),
    (pd.Series([1, 2, 3, 4, 5] * 1000), "num", "jensenshannon"),
    (pd.Series(["a", "b", "c"] * 10), "cat", "chisquare"),
    (pd.Series(["a", "b"] * 10), "cat", "z"),
    (pd.Series(["a", "b"] * 10000), "cat", "jensenshannon"),
])
def test_default_test_selection(reference, kind, expected):
    "test_get_default_stattest: the same column on both sides; Evidently's column type forced where ours differs."
    forced = {"numerical": ["x"]} if kind == "num" and pd.api.types.is_integer_dtype(reference) else {}
    got = one(reference, reference.copy(), **forced)
    assert got.test == expected and not got.drifted
    assert got.test == ev_default_test(reference, reference, kind == "num")


@pytest.mark.parametrize("method, values", [("ks", ["a", "b"]), ("wasserstein", ["a", "b"])])
def test_a_test_for_the_wrong_type_is_an_error(method, values):
    "test_get_stattest_invalid_type: ks on a categorical column is refused (StatTestInvalidFeatureTypeError there)."
    with pytest.raises(InvalidParameterError, match=f"'{method}' does not apply to the categorical column"):
        one(pd.Series(values * 5), pd.Series(values * 5), method=method)


def test_an_unknown_test_is_an_error():
    "test_get_stattest_missing_stattest: StatTestNotFoundError there."
    with pytest.raises(InvalidParameterError, match="must be one of 'auto', 'ks'"):
        one([1.0, 2.0], [1.0, 2.0], method="missing_stattest")


def test_difference_chisquare_and_z_apply_to_numeric_columns():
    """test_get_stattest_invalid_type also refuses 'z' and 'chisquare' on numeric columns by name. Evidently's own
    default selection applies them to numeric columns of at most five values, so we accept them by name too (on
    the column's values); the z-test still needs at most two of them."""
    got = one([1.0, 2.0, 2.0, 1.0], [2.0, 2.0, 2.0, 1.0], method="chisquare")
    assert got.test == "chisquare" and got.p_value == pytest.approx(ev_chisquare(pd.Series([1.0, 2.0, 2.0, 1.0]),
                                                                                    pd.Series([2.0, 2.0, 2.0, 1.0])))
    with pytest.raises(InvalidParameterError, match="The z-test compares two values"):
        one([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], method="z")


# -- Evidently's own expectations: tests/calculations/test_data_drift.py ----------------------------------------------
@pytest.mark.parametrize("reference, current", [([1, 2, 3], [1, 2, 3]), ([3, 2, 1], [1, 2, 3])])
def test_one_column_without_drift(reference, current):
    "test_get_one_column_drift_success: a categorical column of the same values does not drift."
    got = one(pd.Series(reference), pd.Series(current), categorical=["x"])
    assert got.kind == "categorical" and not got.drifted


def test_numbers_against_text_is_an_error():
    "test_get_one_column_drift_value_error: text in a numeric column, on either side, is an error."
    with pytest.raises(InvalidParameterError, match="'x' is int in the reference but text"):
        one(pd.Series([1, 2, 3]), pd.Series(["a", 2, "c"]), numerical=["x"])
    with pytest.raises(InvalidParameterError, match="'x' is text in the reference but int"):
        one(pd.Series(["a", "b", 3]), pd.Series([1, 2, 3]))


def test_a_column_missing_from_the_reference_is_an_error():
    "test_get_one_column_drift_value_error: 'Cannot find column in reference dataset' there."
    with pytest.raises(InvalidParameterError, match="not in the reference: 'feature'"):
        compute_drift(reference=pd.DataFrame({"test": [1, 2, 3]}), current=pd.DataFrame({"feature": [1, 2, 3]}),
                      columns=["feature"], settings=DEFAULTS)


def test_difference_a_column_missing_from_the_current_data_is_a_finding():
    """test_get_one_column_drift_value_error raises 'Cannot find column 'feature' in current dataset'. We report the
    column as missing, and count it as drifted: a batch that lost a column changed shape, and one error would hide
    the verdicts of every other column."""
    report = compute_drift(reference=pd.DataFrame({"feature": [1, 2, 3], "test": [1, 2, 3]}),
                           current=pd.DataFrame({"test": [1, 2, 3]}), settings=DEFAULTS)
    assert report.missing_columns == ["feature"] and report["feature"].drifted and report.dataset_drift


@pytest.mark.parametrize("reference, current, side", [([1, 2, 3], [None] * 3, "current"),
                                                      ([None] * 3, [1, 2, 3], "reference")])
def test_difference_an_empty_column_is_reported(reference, current, side):
    """test_get_one_column_drift_value_error raises 'An empty column 'test' was provided ...'. We report the column
    as not tested (its missing share says why), so the other columns keep their verdicts."""
    report = compute_drift(reference=pd.DataFrame({"test": reference, "other": [1.0, 2.0, 3.0]}),
                           current=pd.DataFrame({"test": current, "other": [1.0, 2.0, 3.0]}), settings=DEFAULTS)
    got = report["test"]
    assert got.test == "none" and not got.drifted and f"all values are missing in the {side} data" in got.note
    assert report.n_tested == 1


# -- our statistics equal Evidently's formulas on arbitrary data --------------------------------------------------------
values = st.lists(st.integers(-3, 3).map(float) | st.floats(-100, 100, allow_nan=False), min_size=1, max_size=80)


@FAST
@given(values, values)
def test_numeric_statistics_equal_evidentlys(ref, cur):
    "KS p-value, normed Wasserstein, and (on columns of at most 20 values) PSI and Jensen-Shannon: Evidently's."
    r, c = pd.Series(ref), pd.Series(cur)
    got = one(r, c)
    assert got.ks_p_value == pytest.approx(stats.ks_2samp(r, c).pvalue, abs=1e-12)
    assert got.wasserstein == pytest.approx(ev_wasserstein(r, c), rel=1e-9, abs=1e-12)
    if r.nunique() <= 20:  # per-value bins, as Evidently's get_binned_data
        assert got.jensen_shannon == pytest.approx(ev_jensenshannon(r, c, True), abs=1e-9)
        assert got.psi == pytest.approx(ev_psi(r, c, True), rel=1e-9, abs=1e-9)
    assert got.test == ev_default_test(r, c, True)
    want_p = {"ks": got.ks_p_value, "chisquare": ev_chisquare(r, c) if got.test == "chisquare" else None,
              "z": ev_z(r, c) if got.test == "z" else None}[got.test]
    if not (got.test == "chisquare" and math.isnan(want_p)):  # one value on both sides: see the difference below
        assert got.p_value == pytest.approx(want_p, abs=1e-12)
        assert got.drifted == (want_p < 0.05)


words = st.lists(st.sampled_from(["a", "b", "c", "d", "é"]), min_size=1, max_size=60)


@FAST
@given(words, words, st.sampled_from(["auto", "chisquare", "jensenshannon", "psi"]))
def test_categorical_statistics_and_verdicts_equal_evidentlys(ref, cur, method):
    r, c = pd.Series(ref), pd.Series(cur)
    got = one(r, c, method=method)
    assert got.jensen_shannon == pytest.approx(ev_jensenshannon(r, c, False), abs=1e-9)
    assert got.psi == pytest.approx(ev_psi(r, c, False), rel=1e-9, abs=1e-9)
    if got.test == "z":
        assert got.p_value == pytest.approx(ev_z(r, c), abs=1e-12)
    elif got.test == "chisquare" and len(set(ref) | set(cur)) > 1:
        assert got.p_value == pytest.approx(ev_chisquare(r, c), abs=1e-12)
    want = {"auto": ev_default_test(r, c, False)}.get(method, method)
    assert got.test == want
    if got.test in ("jensenshannon", "psi"):
        assert got.drifted == (got.statistic >= 0.1)


def test_jensen_shannon_is_on_evidentlys_scale():
    "Natural log, as Evidently's default: disjoint samples give sqrt(ln 2) = 0.8326, base 2 would give 1."
    got = one(pd.Series(["a"] * 50), pd.Series(["b"] * 50), method="jensenshannon")
    assert got.statistic == pytest.approx(math.sqrt(math.log(2)), abs=1e-12)
    assert got.statistic == pytest.approx(jensenshannon([1, 0], [0, 1]), abs=1e-12)
    # the verdict at Evidently's default threshold 0.1 is Evidently's: a shift its scale puts just below 0.1
    ref = pd.Series(["a"] * 500 + ["b"] * 500)
    cur = pd.Series(["a"] * 625 + ["b"] * 375)
    js = ev_jensenshannon(ref, cur, False)
    assert 0.0 < js < 0.1 < js / math.sqrt(math.log(2))  # drift in base 2, none on Evidently's scale
    got = one(ref, cur, method="jensenshannon")
    assert got.statistic == pytest.approx(js, abs=1e-12) and not got.drifted


# -- deliberate differences --------------------------------------------------------------------------------------------
def test_difference_bins_of_numeric_columns_with_many_values():
    """Evidently bins a numeric column of over 20 values with Sturges bins over both samples; we use `bins` (10)
    quantiles of the reference, which a profile can reproduce without the raw reference. PSI and Jensen-Shannon then
    differ (both equal scipy's on their own bins); KS, Wasserstein and the default decision do not."""
    rng = np.random.default_rng(0)
    r, c = pd.Series(rng.normal(size=3000)), pd.Series(rng.normal(0.3, size=2000))
    got = one(r, c)
    edges = np.quantile(r, np.arange(1, 10) / 10)
    full = np.concatenate([[-np.inf], edges, [np.inf]])
    ours = jensenshannon(np.histogram(r, full)[0], np.histogram(c, full)[0])
    assert got.jensen_shannon == pytest.approx(ours, abs=1e-12)
    assert abs(got.jensen_shannon - ev_jensenshannon(r, c, True)) > 1e-3
    assert got.wasserstein == pytest.approx(ev_wasserstein(r, c), rel=1e-9) and got.test == "wasserstein"
    assert DriftProfile.fit(pd.DataFrame({"x": r})).columns["x"].numeric.exact is False  # why: no raw values kept


def test_difference_ks_at_exactly_the_threshold():
    """Evidently's KS drifts when p <= threshold (its other p-value tests when p < threshold); ours drift when
    p < threshold for every p-value test, so a p-value exactly at the threshold is no drift."""
    ref, cur = pd.Series([1.0, 2, 3, 4, 5]), pd.Series([3.0, 4, 5, 6, 7, 8])
    p = stats.ks_2samp(ref, cur).pvalue  # 5/14, exactly
    got = one(ref, cur, method="ks", threshold=p)
    assert got.p_value == p and not got.drifted  # Evidently: p <= threshold, drift


def test_difference_chisquare_of_one_category():
    """scipy's chisquare, and so Evidently's, gives p = nan for one category on both sides (no degrees of freedom,
    never drift); we give p = 1, the same verdict with a p-value that sorts and logs."""
    got = one(pd.Series(["a"] * 5), pd.Series(["a"] * 7), method="chisquare")
    assert math.isnan(ev_chisquare(pd.Series(["a"] * 5), pd.Series(["a"] * 7)))
    assert (got.p_value, got.drifted) == (1.0, False)


def test_difference_integer_columns_with_few_values_are_categorical():
    """An integer column with at most 10 distinct values is categorical for us (codes, ratings, counts), so chi-square
    decides it; Evidently's data definition keeps integers numeric, so KS decides it above five values. Pass
    numerical=[...] for Evidently's choice."""
    ref, cur = pd.Series(list(range(8)) * 10), pd.Series(list(range(8)) * 10)
    assert one(ref, cur).test == "chisquare"
    assert one(ref, cur, numerical=["x"]).test == ev_default_test(ref, cur, True) == "ks"


def test_infinite_values_are_left_out_as_evidently_does():
    "Evidently replaces +-inf by NaN and drops it before testing; so do we, and the note counts them."
    got = one(pd.Series([1.0, 2.0, np.inf, 3.0] * 5), pd.Series([1.0, -np.inf, 2.0, 3.0] * 5))
    assert (got.n_reference, got.n_current, got.infinite_reference, got.infinite_current) == (15, 15, 5, 5)
    assert got.p_value == pytest.approx(ev_chisquare(pd.Series([1.0, 2.0, 3.0] * 5), pd.Series([1.0, 2.0, 3.0] * 5)))
    assert "infinite values left out as missing" in got.note
