"""Reading and comparing runs against real MLflow stores: paging, both filter syntaxes, bulk histories, a server."""
from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_wb.core import InvalidParameterError

MODELS = ["rf", "gbm", "logreg"]


def _populate(client, name: str, n: int, *, steps: int = 5) -> list[str]:
    "n finished runs with varied params, metrics and a val_loss history; one log_batch per run."
    from mlflow.entities import Metric, Param

    from mlops_wb.core import ensure_experiment

    exp = ensure_experiment(name, client=client)
    ids = []
    for i in range(n):
        run = client.create_run(exp, run_name=f"run-{i:02d}" if i % 5 else f"special-{i:02d}")
        ts = int(time.time() * 1000)
        acc = 0.6 + 0.03 * ((i * 7) % 12)
        ms = [Metric("accuracy", acc, ts, 0), Metric("rmse", 1 - acc, ts, 0)]
        ms += [Metric("val_loss", (1 - acc) * (1 + 1 / (s + 1)), ts + s, s) for s in range(steps)]
        params = {"model": MODELS[i % 3], "max_depth": str(2 + i % 6)}
        if i % 4:
            params["C"] = str(0.1 * (1 + i % 3))
        client.log_batch(run.info.run_id, metrics=ms, params=[Param(k, v) for k, v in params.items()])
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    return ids


@pytest.fixture(scope="module")
def populated(tmp_path_factory, sqlite_template):
    "A SQLite store (copied from the migrated template) with 24 runs in 'paging'."
    import shutil

    from mlops_wb.core import get_client

    db = tmp_path_factory.mktemp("tracking") / "mlflow.db"
    shutil.copy(sqlite_template, db)
    client = get_client(f"sqlite:///{db}")
    return client, _populate(client, "paging", 24)


def test_paging_returns_every_run_once(populated):
    from mlops_wb.tracking import iter_run_pages

    client, ids = populated
    for as_frames in (False, True):
        pages = list(iter_run_pages("paging", first_page=5, page_size=7, client=client, as_frames=as_frames))
        assert [len(p) for p in pages] == [5, 7, 7, 5]
        got = [r for p in pages for r in (p.run_id if as_frames else [r.info.run_id for r in p])]
        assert sorted(got) == sorted(ids) and len(set(got)) == len(got)
        assert [len(p) for p in iter_run_pages("paging", first_page=5, page_size=7, max_runs=9, client=client,
                                               as_frames=as_frames)] == [5, 4]


def test_load_runs_matches_mlflow_search_runs(populated):
    import mlflow
    import pandas as pd

    from mlops_wb.tracking import load_runs

    client, ids = populated
    ours = load_runs("paging", client=client)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        theirs = mlflow.search_runs(experiment_names=["paging"])
    finally:
        mlflow.set_tracking_uri(previous)
    assert len(ours) == len(theirs) == 24
    assert ours.run_id.tolist() == theirs.run_id.tolist()  # same order: newest first
    pd.testing.assert_frame_equal(ours[theirs.columns], theirs, check_dtype=False)
    assert (ours.run_name == ours["tags.mlflow.runName"]).all()


def test_progress_bar_only_when_loading_takes_long(populated, capsys):
    "No bar for a quick load; progress=True shows one at once, progress=False never."
    from mlops_wb.tracking import load_runs

    client, _ = populated
    assert len(load_runs("paging", client=client)) == 24
    assert "loading runs" not in capsys.readouterr().err
    load_runs("paging", progress=True, client=client)
    assert "loading runs" in capsys.readouterr().err
    load_runs("paging", progress=False, client=client)
    assert "loading runs" not in capsys.readouterr().err


OPS = ["=", "!=", ">", ">=", "<", "<="]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(op=st.sampled_from(OPS), threshold=st.sampled_from([0.6, 0.69, 0.75, 0.78, 0.9, 1.0]),
       model=st.sampled_from(MODELS + ["none"]), like=st.sampled_from(["run-%", "special-%", "%-1_", "%x%"]),
       null_c=st.booleans())
def test_mlflow_syntax_in_memory_agrees_with_the_store(populated, op, threshold, model, like, null_c):
    "filter_runs evaluates MLflow's syntax on loaded runs exactly as the store does on the server side."
    from mlops_wb.tracking import filter_runs, load_runs

    client, _ = populated
    runs = load_runs("paging", client=client, progress=False)
    clauses = [f"metrics.accuracy {op} {threshold}", f"params.model != '{model}'", f"attributes.run_name LIKE '{like}'",
               "params.C IS NULL" if null_c else "params.C IS NOT NULL"]
    text = " and ".join(clauses)
    server = load_runs("paging", filter_string=text, client=client)
    local = filter_runs(runs, text)
    assert sorted(local.run_id) == sorted(server.run_id), text


def test_pandas_or_is_the_union_of_two_mlflow_searches(populated):
    from mlops_wb.tracking import load_runs

    client, _ = populated
    a = load_runs("paging", filter_string="metrics.accuracy > 0.85", client=client)
    b = load_runs("paging", filter_string="params.model = 'logreg'", client=client)
    both = load_runs("paging", query="metrics.accuracy > 0.85 or params.model == 'logreg'", client=client)
    assert sorted(both.run_id) == sorted(set(a.run_id) | set(b.run_id))
    assert 0 < len(both) < 24
    numeric = load_runs("paging", query="params.max_depth.astype('float') >= 6 and (params.C.isna() or metrics.rmse < 0.2)",
                        client=client)
    assert len(numeric) and (numeric["params.max_depth"].astype(int) >= 6).all()
    text = load_runs("paging", query="params.max_depth == '7'", client=client)  # params are text, as in MLflow
    assert set(text["params.max_depth"]) == {"7"}
    with pytest.raises(InvalidParameterError, match="compares params with a number"):
        load_runs("paging", query="params.max_depth >= 6", client=client)


def test_compare_runs_histories_equal_mlflow_one_by_one(populated):
    import pandas as pd

    from mlops_wb.tracking import compare_runs

    client, ids = populated
    chosen = ids[:6]
    cmp = compare_runs(chosen, client=client)
    for run_id in chosen:
        for key in ("val_loss", "accuracy", "rmse"):
            theirs = sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, key))
            mine = cmp.histories[(cmp.histories.run_id == run_id) & (cmp.histories.key == key)]
            ms = (mine.timestamp - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
            ours = sorted(zip(mine.step.tolist(), ms.tolist(), mine.value.tolist(), strict=True))
            assert ours == theirs, (run_id, key)
    assert list(cmp.metrics.index) == chosen
    assert set(cmp.params.columns) == {"run_name", "model", "max_depth", "C"}
    assert cmp.directions["rmse"] == "min" and cmp.directions["accuracy"] == "max"
    best_acc = cmp.metrics.accuracy.max()
    assert set(cmp.metrics.index[cmp.is_best.accuracy]) == set(cmp.metrics.index[cmp.metrics.accuracy == best_acc])


def test_against_a_tracking_server(mlflow_server):
    "The same functions work against `mlflow server` over HTTP (histories through parallel requests)."
    from mlops_wb.core import get_client
    from mlops_wb.tracking import best_run, compare_runs, load_runs

    client = get_client(mlflow_server)
    ids = _populate(client, "over-http", 8)
    runs = load_runs("over-http", query="params.model == 'rf' or metrics.accuracy > 0.8", client=client)
    assert 0 < len(runs) < 8
    cmp = compare_runs(ids[:3], client=client)
    assert len(cmp.histories[cmp.histories.key == "val_loss"]) == 3 * 5
    assert cmp.histories.run_id.unique().tolist() == ids[:3]
    best = best_run("over-http", metric="accuracy", client=client)
    assert best["metrics.accuracy"] == load_runs("over-http", client=client)["metrics.accuracy"].max()
    worst = best_run("over-http", metric="accuracy", mode="min", where="params.model = 'gbm'", client=client)
    assert worst["params.model"] == "gbm"
