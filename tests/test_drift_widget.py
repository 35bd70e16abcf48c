"""DriftDashboard driven by its traits and handlers, as a user's clicks would drive it."""
from __future__ import annotations

import tempfile

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
    assert dash.figure.layout.xaxis.range == dash.figure.layout.xaxis2.range  # histogram and ECDF share x
    assert "1 of 3 columns drifted" in dash._header.value
    assert [r["key"] for r in dash._table.rows][0] == "income" and dash._table.selected == "income"


def test_selecting_a_column_updates_the_figure(dash):
    dash.column = "city"
    assert [t.type for t in dash.figure.data] == ["bar", "bar"]
    assert "city" in dash.figure.layout.title.text
    assert all("<script>" not in str(x) for x in dash.figure.data[0].x)  # category names are escaped
    dash._table.selected = "age"  # a click on the table row
    assert dash.column == "age" and dash._picker.value == "age" and dash._table.selected == "age"
    assert [t.type for t in dash.figure.data] == ["bar", "bar", "scatter", "scatter"]
    dash._picker.value = "income"  # the picker
    assert dash.column == "income" and "income" in dash.figure.layout.title.text


def test_threshold_controls_say_when_they_cannot_change_anything(dash, frames):
    # 600 reference rows: p-value tests decide every column, so the distance threshold changes nothing
    assert dash._d_slider.disabled and not dash._p_slider.disabled
    assert "Not used: every column is decided by a p-value test" in dash._d_note.value
    assert "600 values" in dash._d_note.value  # the reason names the reference values the rule counts
    assert dash._p_note.value == ""
    # the p-value control is on a log scale down to 1e-12
    assert (dash._p_slider.base, dash._p_slider.min, dash._p_slider.max) == (10, -12, 0)
    ref, cur = frames
    big = DriftDashboard(reference=pd.concat([ref] * 3, ignore_index=True),
                         current=pd.concat([cur] * 3, ignore_index=True), settings=DEFAULTS)
    assert big._p_slider.disabled and not big._d_slider.disabled  # 1,800 rows: distances decide
    assert "decided by a distance" in big._p_note.value


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
    dash._p_slider.value = 1e-12  # the strictest threshold: income (p = 1.2e-19) still drifts
    assert dash.p_value_threshold == 1e-12 and dash.report.drifted_columns == ["income"]
    assert dash.report["income"].p_value < 1e-18
    dash.drift_share = 0.05
    assert dash.report.drift_share == 0.05
    dash.p_value_threshold, dash.drift_share = 0.05, 0.5
    assert dash.report.drifted_columns == ["income"]


def test_bad_input_shows_in_the_error_area(frames, dash):
    ref, cur = frames
    bad = DriftDashboard(reference=ref, current=cur.assign(income="high"), settings=DEFAULTS)
    assert "'income' is float in the reference but text" in bad.error
    assert "&#9888;" in bad._status_area.value and bad.report is None
    assert "No drift report" in bad._header.value
    empty = DriftDashboard(reference=ref, current=cur.iloc[:0], settings=DEFAULTS)
    assert "0 rows" in empty.error
    missing = DriftDashboard(reference=ref, settings=DEFAULTS)
    assert "reference=... and current=..." in missing.error
    wrong = DriftDashboard(report="not a report")
    assert "got a str" in wrong.error
    dash.column = "no such column"
    assert "has no column 'no such column'" in dash.error and "no such column" in dash._status_area.value
    dash.column = "city"
    assert dash.error == "" and "&#9888;" not in dash._status_area.value


def test_report_and_profile_inputs(frames):
    ref, cur = frames
    report = compute_drift(reference=DriftProfile.fit(ref), current=cur, settings=DEFAULTS)
    from_dict = DriftDashboard(report.to_dict())
    assert from_dict.report.to_dict() == report.to_dict() and from_dict.column == report.sorted_columns()[0].column


def test_timeline_heatmap_and_sections(frames):
    import plotly.graph_objects as go

    from mlops_wb.widgets.view import VIEW_MIME

    ref, cur = frames
    rng = np.random.default_rng(2)
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 6 * 24, 3000)), unit="h")
    batch = ref.sample(3000, replace=True, random_state=1).reset_index(drop=True).assign(ts=ts)
    batch.loc[batch.ts >= "2024-01-04", "age"] += 15
    timed = DriftDashboard(reference=ref, current=batch, time_column="ts", freq="1D", settings=DEFAULTS)
    assert timed.error == "" and timed.heatmap.data[0].type == "heatmap"
    assert timed.timeline.window.nunique() == 6
    drifted_before = int(timed.timeline.drifted.sum())
    timed.p_value_threshold = 0.99  # the heatmap is re-judged too
    assert int(timed.timeline.drifted.sum()) > drifted_before
    timed.add_section("Drift history", go.Figure(go.Scatter(x=[1, 2, 3], y=[0.1, 0.3, 0.2])))
    bundle = timed._repr_mimebundle_()
    assert VIEW_MIME in bundle and "application/vnd.jupyter.widget-view+json" not in bundle
    parts = bundle[VIEW_MIME]["snapshot"]["parts"]
    charts = [p["application/vnd.plotly.v1+json"] for p in parts if "application/vnd.plotly.v1+json" in p]
    assert [c["data"][0]["type"] for c in charts] == ["bar", "heatmap", "scatter"]  # overlay, heatmap, the section
    html = bundle["text/html"]
    assert "Drift over time" in html and "Drift history" in html and "<script>x</script>" not in html
