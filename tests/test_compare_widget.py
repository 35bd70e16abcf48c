"""ExperimentComparison driven through its traits and handlers, against real MLflow stores (no mocks)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from conftest import clean_env


def _log_run(client, experiment_id, name, params, acc, history_steps=10):
    "A finished run logged with one log_batch: params, accuracy/log_loss, and train/val loss histories."
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment_id, run_name=name)
    ts = int(time.time() * 1000)
    ms = [Metric("accuracy", acc, ts, 0), Metric("log_loss", 1 - acc, ts, 0)]
    for key in ("train_loss", "val_loss"):
        ms += [Metric(key, (1 - acc) * (1 + 0.9 ** s), ts + 100 * s, s) for s in range(history_steps)]
    client.log_batch(run.info.run_id, metrics=ms, params=[Param(k, str(v)) for k, v in params.items()])
    client.set_terminated(run.info.run_id)
    return run.info.run_id


EVIL = "<script>alert('pwned')</script>"
EVIL_PARAM = "<img src=x onerror=alert(1)>"


@pytest.fixture
def store(tracking_uri):
    "A store with one experiment of five runs (one named with HTML) and the client."
    from mlops_wb.core import ensure_experiment, get_client

    client = get_client(tracking_uri)
    exp = ensure_experiment("widget-test", client=client)
    specs = [("rf-a", {"model": "rf", "max_depth": 3, "seed": 1}, 0.80),
             ("rf-b", {"model": "rf", "max_depth": 9, "seed": 1}, 0.88),
             ("lr", {"model": "logreg", "C": 0.5, "seed": 1}, 0.75),
             ("gbm", {"model": "gbm", "max_depth": 4, "seed": 1}, 0.84),
             (EVIL, {"model": EVIL_PARAM, "max_depth": 2, "seed": 1}, 0.70)]
    ids = {name: _log_run(client, exp, name, params, acc) for name, params, acc in specs}
    return client, exp, ids


def _widget(store, **kwargs):
    from mlops_wb.widgets import ExperimentComparison

    client, _, _ = store
    return ExperimentComparison("widget-test", client=client, background=False, **kwargs)


def test_filter_with_or_select_two_see_diff_open_histories(store):
    client, _, ids = store
    w = _widget(store)
    assert w.complete and len(w.runs) == 5 and w.error == ""

    # OR, which MLflow's own search cannot express
    w.filter_text = "metrics.accuracy >= 0.88 or params.model == 'logreg'"
    assert sorted(w.view.run_name) == ["lr", "rf-b"]
    assert "pandas expression" in w._syntax_label.value
    assert w._grid.total == 2 and {r[0] for r in w._grid.head} == {ids["lr"], ids["rf-b"]}  # rows keyed by run id
    assert w.status == "2 of 5 runs match the filter."

    # MLflow syntax in the same box
    w.filter_text = "params.model = 'rf' and metrics.accuracy > 0.5"
    assert sorted(w.view.run_name) == ["rf-a", "rf-b"]
    assert "MLflow syntax" in w._syntax_label.value

    # select two rows as two clicks in the browser do: the grid's selected keys
    w._grid.selected = [ids["rf-a"], ids["rf-b"]]
    assert sorted(w.selected) == sorted([ids["rf-a"], ids["rf-b"]])
    cmp = w.comparison
    assert list(cmp.params.columns) == ["run_name", "max_depth"]  # model and seed are equal: hidden
    assert "max_depth" in w._tabs.diff.value and "seed" not in w._tabs.diff.value
    assert cmp.best["accuracy"] == ids["rf-b"] and cmp.best["log_loss"] == ids["rf-b"]
    w.diff_only = False
    assert {"model", "seed", "max_depth"} <= set(w.comparison.params.columns)
    assert "seed" in w._tabs.diff.value

    # the first selection opens the parallel coordinates of the two runs: the param that differs, 4 metrics
    assert w._tabs.open_tab == "Parallel coordinates"
    dims = w._tabs.parcoords.figure.data[0].dimensions
    assert [d.label for d in dims] == ["max_depth", "accuracy", "log_loss", "train_loss", "val_loss"]
    assert all(len(d.values) == 2 for d in dims)
    w.parcoords_metrics = ["metrics.accuracy"]  # the user's choice of metrics
    assert [d.label for d in w._tabs.parcoords.figure.data[0].dimensions] == ["max_depth", "accuracy"]

    # open the histories: fetched from MLflow, overlaid per metric
    w.open_histories()
    assert set(w.histories.run_id) == set(w.selected)
    assert len(w.histories[w.histories.key == "val_loss"]) == 20  # 2 runs x 10 steps
    assert list(w._tabs.history_keys.value) == ["train_loss", "val_loss"]
    fig = w._tabs.histories.figure
    assert len(fig.data) == 4
    assert sorted({t.name for t in fig.data}) == ["rf-a", "rf-b"]
    w.smoothing = 0.8
    assert len(w._tabs.histories.figure.data) == 8
    w.history_x = "time"
    assert w.error == ""

    # the scatter of any two columns, the selection highlighted
    w._tabs.selected_index = 1
    w.scatter_x, w.scatter_y = "params.max_depth", "metrics.accuracy"
    sc = w._tabs.scatter.figure.data[0]
    assert len(sc.x) == 2 and list(sc.marker.size) == [14, 14]


def test_selection_survives_filter_and_refresh(store):
    client, exp, ids = store
    w = _widget(store)
    w.selected = [ids["lr"], ids["gbm"]]
    assert sorted(w._grid.selected) == sorted([ids["lr"], ids["gbm"]])
    w.filter_text = "params.model == 'gbm'"
    assert w.selected == [ids["lr"], ids["gbm"]]  # filtering hides rows, it does not unselect them
    assert w._grid.selected == [ids["gbm"]]
    w._grid.selected = []  # the user unticks gbm: lr, filtered out, stays selected
    assert w.selected == [ids["lr"]]
    late = _log_run(client, exp, "late", {"model": "gbm", "max_depth": 7, "seed": 1}, 0.91)
    w.refresh()
    assert late in set(w.view.run_id) and len(w.runs) == 6
    assert w.selected == [ids["lr"]]


def test_errors_show_in_status_and_are_escaped(store):
    _, _, ids = store
    w = _widget(store)
    w.filter_text = "metrics.nope > 1 <b>"
    assert w.error and "metrics.nope" in w.error
    assert "<b>" not in w._status_area.value and "&lt;b&gt;" in w._status_area.value
    assert len(w.view) == 5  # a bad filter leaves the last good view
    w.selected = ["f" * 32]
    assert "No loaded run has the id" in w.error
    w.selected = [ids["rf-a"]]
    assert w.error == ""


def test_html_in_run_names_and_params_is_escaped_everywhere(store):
    import re

    from mlops_wb.widgets.base import asset

    _, _, ids = store
    w = _widget(store)
    w.selected = [ids[EVIL], ids["rf-a"]]
    parcoords = w._tabs.parcoords.figure
    w.open_histories()
    histories = w._tabs.histories.figure
    w._tabs.selected_index = 1
    w.scatter_x = "params.model"
    html = w.static_html()
    rendered = {
        "header": w._header.value,
        "status": w._status_area.value,
        "diff": w._tabs.diff.value,
        "static, outside the charts' scripts": re.sub(r"<script>.*?</script>", "", html, flags=re.S),
        "parcoords": json.dumps([parcoords.layout.title.text, [d.label for d in parcoords.data[0].dimensions]]),
        "scatter": json.dumps(w._tabs.scatter.figure.to_dict(), default=str),
        "histories": json.dumps(histories.to_dict(), default=str),
    }
    for where, text in rendered.items():
        assert "<script>" not in text and "<img" not in text, f"unescaped HTML in the {where}"
    for where in ("diff", "static, outside the charts' scripts", "scatter", "histories"):
        assert "&lt;script&gt;" in rendered[where] or "&lt;img" in rendered[where], where
    assert "<script>alert" not in html
    # the grid and the record views set every value as text in the browser, never as HTML
    assert EVIL in [r[2] for r in w._grid.head]
    for name in ("common.js", "grid/index.js", "table/index.js", "timeline/index.js"):
        assert "innerHTML" not in asset(name) and "insertAdjacentHTML" not in asset(name), name
    # parallel coordinates draw category ticks as plain SVG text (no markup is parsed): shown as typed
    model_axis = [d for d in parcoords.data[0].dimensions if d.label == "model"][0]
    assert EVIL_PARAM in model_axis.ticktext


def test_first_view_before_all_runs_are_loaded(store):
    from mlops_wb.widgets import ExperimentComparison

    client, _, _ = store
    w = ExperimentComparison("widget-test", client=client, first_page=2)
    assert len(w.runs) in (2, 5)  # the first page, unless the background thread already finished
    assert w.wait(timeout=120) is True
    assert len(w.runs) == 5 and w._grid.total == 5
    assert w.status == "5 of 5 runs."
    _log_run(client, store[1], "late", {"model": "rf", "max_depth": 1, "seed": 1}, 0.5)
    w.selected = [store[2]["lr"]]
    w.refresh()  # in the background: the loaded runs stay on show meanwhile
    assert len(w.runs) in (5, 6) and w.selected == [store[2]["lr"]]
    assert w.wait(timeout=120) is True
    assert len(w.runs) == 6 and w.status == "6 of 6 runs. 1 selected." and w.selected == [store[2]["lr"]]


def test_static_rendering_in_papermill(store, tmp_path):
    "A papermill run keeps a static HTML rendering of the widget (widget state is not saved)."
    import nbformat

    client, _, _ = store
    uri = client._tracking_client.tracking_uri
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "from mlops_wb.widgets import ExperimentComparison\n"
        f"w = ExperimentComparison('widget-test', uri={uri!r}, background=False)\n"
        "w.filter_text = \"metrics.accuracy > 0.79 or params.model == 'logreg'\"\n"
        "w")]
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    r = subprocess.run([sys.executable, "-m", "papermill", str(src), str(out), "-k", "python3"],
                       capture_output=True, text=True, env=clean_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    outputs = nbformat.read(out, as_version=4).cells[0].outputs
    views = [o for o in outputs if "application/vnd.mlops-wb.view+json" in o.get("data", {})]
    assert len(views) == 1, [sorted(o.get("data", {})) for o in outputs]
    html = views[0]["data"]["text/html"]  # the widget's last state: the filter set after it was created
    assert "4 of 5 runs match the filter." in html and "rf-b" in html and "lr" in html
    assert "<script>alert" not in html and "<style>" in html
