"""DriftDashboard driven by its traits and handlers, as a user's clicks would drive it."""
from __future__ import annotations

import tempfile
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mlops_wb.core import load_settings
from mlops_wb.drift import DriftProfile, compute_drift
from mlops_wb.widgets import DriftDashboard

DEFAULTS = load_settings(start=tempfile.mkdtemp())


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(16)
    n = 600  # at most small_sample_rows: p-value tests decide
    ref = pd.DataFrame({"income": rng.normal(100, 10, n), "age": rng.normal(40, 10, n),
                        "city": rng.choice(["Paris", "Lyon", "<script>x</script>"], n)})
    cur = pd.DataFrame({"income": rng.normal(106, 10, n), "age": rng.normal(41.2, 10, n),
                        "city": rng.choice(["Paris", "Lyon", "<script>x</script>"], n)})
    return ref, cur


@pytest.fixture(scope="module")
def dash(frames):
    ref, cur = frames
    return DriftDashboard(reference=ref, current=cur, settings=DEFAULTS)


def test_opens_on_the_most_drifted_column(dash):
    assert dash.error == ""
    assert dash.report.drifted_columns == ["income"]
    assert dash.column == "income"
    assert [t.type for t in dash.figure.data] == ["bar", "bar", "scatter", "scatter"]
    assert "1 of 3 columns drifted" in dash._header.value


def test_selecting_a_column_updates_the_figure(dash):
    dash.column = "city"
    assert [t.type for t in dash.figure.data] == ["bar", "bar"]
    assert "city" in dash.figure.layout.title.text
    assert all("<script>" not in str(x) for x in dash.figure.data[0].x)  # category names are escaped
    dash._rows["age"].click()  # a click on the table row
    assert dash.column == "age" and dash._picker.value == "age"
    assert dash._rows["age"].style.font_weight == "bold"
    assert [t.type for t in dash.figure.data] == ["bar", "bar", "scatter", "scatter"]
    dash._picker.value = "income"  # the picker
    assert dash.column == "income" and "income" in dash.figure.layout.title.text


def test_moving_the_threshold_changes_verdicts_without_recomputing(dash):
    stats_before = dash.report.to_frame()[["column", "statistic", "p_value"]]
    p_age = dash.report["age"].p_value
    assert dash.report["age"].test == "ks" and not dash.report["age"].drifted
    dash.p_value_threshold = min(1.0, p_age * 1.5)  # the slider's trait
    assert dash.report["age"].drifted and dash._p_slider.value == dash.p_value_threshold
    assert "2 of 3 columns drifted" in dash._header.value
    pd.testing.assert_frame_equal(dash.report.to_frame()[["column", "statistic", "p_value"]], stats_before)
    dash._p_slider.value = 0.0001  # moving the slider itself
    assert dash.p_value_threshold == 0.0001 and dash.report.drifted_columns == ["income"]
    dash.drift_share = 0.05
    assert dash.report.drift_share == 0.05
    dash.p_value_threshold, dash.drift_share = 0.05, 0.5
    assert dash.report.drifted_columns == ["income"]


def test_bad_input_shows_in_the_error_area(frames, dash):
    ref, cur = frames
    bad = DriftDashboard(reference=ref, current=cur.assign(income="high"), settings=DEFAULTS)
    assert "'income' is float in the reference but text" in bad.error
    assert "&#9888;" in bad._error.value and bad.report is None
    assert "No drift report" in bad._header.value
    empty = DriftDashboard(reference=ref, current=cur.iloc[:0], settings=DEFAULTS)
    assert "0 rows" in empty.error
    missing = DriftDashboard(reference=ref, settings=DEFAULTS)
    assert "reference=... and current=..." in missing.error
    wrong = DriftDashboard(report="not a report")
    assert "got a str" in wrong.error
    dash.column = "no such column"
    assert "has no column 'no such column'" in dash.error and "no such column" in dash._error.value
    dash.column = "city"
    assert dash.error == "" and dash._error.value == ""


def test_report_and_profile_inputs(frames):
    ref, cur = frames
    report = compute_drift(reference=DriftProfile.fit(ref), current=cur, settings=DEFAULTS)
    from_dict = DriftDashboard(report.to_dict())
    assert from_dict.report.to_dict() == report.to_dict() and from_dict.column == report.sorted_columns()[0].column


def test_timeline_heatmap_click_selects_the_column(frames):
    ref, cur = frames
    rng = np.random.default_rng(2)
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 6 * 24, 3000)), unit="h")
    batch = ref.sample(3000, replace=True, random_state=1).reset_index(drop=True).assign(ts=ts)
    batch.loc[batch.ts >= "2024-01-04", "age"] += 15
    timed = DriftDashboard(reference=ref, current=batch, time_column="ts", freq="1D", settings=DEFAULTS)
    assert timed.error == "" and timed.heatmap.data[0].type == "heatmap"
    assert timed.timeline.window.nunique() == 6
    row = timed._heat_columns.index("city")
    timed._on_heatmap_click(timed.heatmap.data[0], SimpleNamespace(ys=[row], xs=["2024-01-02"]))
    assert timed.column == "city" and "city" in timed.figure.layout.title.text
    drifted_before = int(timed.timeline.drifted.sum())
    timed.p_value_threshold = 0.99  # the heatmap is re-judged too
    assert int(timed.timeline.drifted.sum()) > drifted_before
    bundle = timed._repr_mimebundle_()
    html = bundle["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "Drift over time" in html and "<script>" not in html
