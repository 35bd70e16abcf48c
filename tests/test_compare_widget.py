"""ExperimentComparison driven through its traits and handlers, against real MLflow stores (no mocks)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from conftest import clean_env

pytest.importorskip("itables.widget")


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
    assert len(w._table.df) == 2
    assert w.status == "2 of 5 runs match the filter."

    # MLflow syntax in the same box
    w.filter_text = "params.model = 'rf' and metrics.accuracy > 0.5"
    assert sorted(w.view.run_name) == ["rf-a", "rf-b"]
    assert "MLflow syntax" in w._syntax_label.value

    # select two rows as a click in the browser does: positions in the displayed table
    w._table.selected_rows = [0, 1]
    assert sorted(w.selected) == sorted([ids["rf-a"], ids["rf-b"]])
    cmp = w.comparison
    assert list(cmp.params.columns) == ["run_name", "max_depth"]  # model and seed are equal: hidden
    assert "max_depth" in w._diff_html.value and "seed" not in w._diff_html.value
    assert cmp.best["accuracy"] == ids["rf-b"] and cmp.best["log_loss"] == ids["rf-b"]
    w.diff_only = False
    assert {"model", "seed", "max_depth"} <= set(w.comparison.params.columns)
    assert "seed" in w._diff_html.value

    # the first selection opens the parallel coordinates of the two runs
    assert w._tabs.selected_index == 0
    dims = w._figs["parcoords"].data[0].dimensions
    assert all(len(d.values) == 2 for d in dims)

    # open the histories: fetched from MLflow, overlaid per metric
    w.open_histories()
    assert set(w.histories.run_id) == set(w.selected)
    assert len(w.histories[w.histories.key == "val_loss"]) == 20  # 2 runs x 10 steps
    assert list(w._hist_keys.value) == ["train_loss", "val_loss"]
    fig = w._figs["histories"]
    assert len(fig.data) == 4
    assert sorted({t.name for t in fig.data}) == ["rf-a", "rf-b"]
    w.smoothing = 0.8
    assert len(fig.data) == 8
    w.history_x = "time"
    assert w.error == ""

    # the scatter of any two columns, the selection highlighted
    w._tabs.selected_index = 1
    w.scatter_x, w.scatter_y = "params.max_depth", "metrics.accuracy"
    sc = w._figs["scatter"].data[0]
    assert len(sc.x) == 2 and list(sc.marker.size) == [14, 14]


def test_selection_survives_filter_and_refresh(store):
    client, exp, ids = store
    w = _widget(store)
    w.selected = [ids["lr"], ids["gbm"]]
    assert sorted(w._table.selected_rows) == sorted(
        w.view.index[w.view.run_id.isin([ids["lr"], ids["gbm"]])].tolist())
    w.filter_text = "params.model == 'gbm'"
    assert w.selected == [ids["lr"], ids["gbm"]]  # filtering hides rows, it does not unselect them
    assert w._table.selected_rows == [0]
    w._table.selected_rows = []  # the user unticks gbm: lr, filtered out, stays selected
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
    assert "<b>" not in w._status_html.value and "&lt;b&gt;" in w._status_html.value
    assert len(w.view) == 5  # a bad filter leaves the last good view
    w.selected = ["f" * 32]
    assert "No loaded run has the id" in w.error
    w.selected = [ids["rf-a"]]
    assert w.error == ""


def test_html_in_run_names_and_params_is_escaped_everywhere(store):
    _, _, ids = store
    w = _widget(store)
    w.selected = [ids[EVIL], ids["rf-a"]]
    w.open_histories()
    w._tabs.selected_index = 1
    w.scatter_x = "params.model"
    rendered = {
        "header": w._header.value,
        "status": w._status_html.value,
        "diff": w._diff_html.value,
        "table data": json.dumps(w._table._dt_args["data_json"]),
        "table header": w._table._dt_args["table_html"],
        "static": w.static_html(),
        "mimebundle": w._repr_mimebundle_()["text/html"],
        "parcoords": json.dumps([w._figs["parcoords"].layout.title.text,
                                 [d.label for d in w._figs["parcoords"].data[0].dimensions]]),
        "scatter": json.dumps(w._figs["scatter"].to_dict(), default=str),
        "histories": json.dumps(w._figs["histories"].to_dict(), default=str),
    }
    for where, text in rendered.items():
        assert "<script>" not in text and "<img" not in text, f"unescaped HTML in the {where}"
    for where in ("diff", "table data", "static", "scatter", "histories"):
        assert "&lt;script&gt;" in rendered[where] or "&lt;img" in rendered[where], where
    # parallel coordinates draw category ticks as plain SVG text (no markup is parsed): shown as typed
    model_axis = [d for d in w._figs["parcoords"].data[0].dimensions if d.label == "model"][0]
    assert EVIL_PARAM in model_axis.ticktext


def test_first_view_before_all_runs_are_loaded(store):
    from mlops_wb.widgets import ExperimentComparison

    client, _, _ = store
    w = ExperimentComparison("widget-test", client=client, first_page=2)
    assert len(w.runs) in (2, 5)  # the first page, unless the background thread already finished
    assert w.wait(timeout=120) is True
    assert len(w.runs) == 5 and len(w._table.df) == 5
    assert w.status == "5 of 5 runs."
    _log_run(client, store[1], "late", {"model": "rf", "max_depth": 1, "seed": 1}, 0.5)
    w.selected = [store[2]["lr"]]
    w.refresh()  # in the background: the loaded runs stay on show meanwhile
    assert len(w.runs) in (5, 6) and w.selected == [store[2]["lr"]]
    assert w.wait(timeout=120) is True
    assert len(w.runs) == 6 and w.status == "6 of 6 runs." and w.selected == [store[2]["lr"]]


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
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "4 of 5 runs match the filter." in html and "rf-b" in html and "lr" in html
    assert "<script>" not in html
