"""Reading MLflow's tables directly gives exactly what MLflow's client gives, on SQLite and on PostgreSQL.

A store with varied runs (deleted runs, missing params, nested runs, NaN and infinite metrics, many tags, ties in
start time, a running run, a run named only by its tag, text in many scripts) is read both ways; the frames must be
equal in columns, dtypes, values and order, for every experiment selection, view, order and filter tried, and equal
in values and order to `mlflow.search_runs`. An unknown schema revision falls back to the client.
"""
from __future__ import annotations

import math
import shutil
import time

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_wb.core import TrackingError

TAGS = 60  # one run carries this many tags


def populate(client, prefix: str) -> dict:
    "Two experiments of varied runs through MLflow's client; returns their ids and some run ids."
    from mlflow.entities import Metric, Param, RunTag

    from mlops_wb.core import ensure_experiment

    exps = [ensure_experiment(f"{prefix}-a", client=client), ensure_experiment(f"{prefix}-b", client=client)]
    ids = []
    base = 1_700_000_000_000
    for i in range(40):
        exp = exps[i % 2]
        parent = {"mlflow.parentRunId": ids[0]} if i in (4, 6, 8) else {}
        run = client.create_run(exp, run_name=f"run-{i:02d}-{'ünï' if i % 7 == 0 else 'x'}",
                                start_time=base + 1000 * (i // 3), tags=parent or None)  # ties of three
        r = run.info.run_id
        values = [0.5, math.nan, math.inf, -math.inf, 0.0, -1e-300, 1e300, 0.123456789]
        ms = [Metric("acc", 0.99, base + 5, 0), Metric("acc", values[i % 8], base, 1)] if i % 5 else []
        ms += [Metric("loss", 1.0 / (i + 1), base + s, s) for s in range(3)] if i % 3 else []
        ps = [Param("model", ["rf", "gbm", "日本", "x y"][i % 4])] if i % 4 != 3 else []
        ps += [Param("depth", str(i % 6))] if i % 2 else []
        ps += [Param("lr", "1e-3")] if i == 9 else []
        ts = [RunTag(f"t{k:02d}", f"v{k}") for k in range(TAGS)] if i == 11 else []
        ts += [RunTag("note", ["", "Ω", "with 'quote'", "a\nb"][i % 4])] if i % 3 == 0 else []
        client.log_batch(r, metrics=ms, params=ps, tags=ts)
        if i != 13:  # run 13 stays RUNNING: no end time
            client.set_terminated(r, ["FINISHED", "FAILED", "KILLED"][i % 3], end_time=base + 10_000 + i)
        ids.append(r)
    for r in (ids[2], ids[17]):
        client.delete_run(r)
    return {"exps": exps, "ids": ids}


def unname(uri: str, run_id: str) -> None:
    "Empty a run's name column, as in stores written by MLflow <= 1.29 (the name then lives in the tag only)."
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri)
    with engine.begin() as con:
        con.execute(sqlalchemy.text("UPDATE runs SET name = '' WHERE run_uuid = :r"), {"r": run_id})
    engine.dispose()


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory, sqlite_template):
    from mlops_wb.core import get_client

    db = tmp_path_factory.mktemp("tables") / "mlflow.db"
    shutil.copy(sqlite_template, db)
    uri = f"sqlite:///{db}"
    made = populate(get_client(uri), "tables")
    unname(uri, made["ids"][5])
    return uri, made


@pytest.fixture(scope="module")
def postgresql_store(postgres_uri):
    from mlops_wb.core import get_client

    made = populate(get_client(postgres_uri), "pg")
    unname(postgres_uri, made["ids"][5])
    return postgres_uri, made


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request):
    return request.getfixturevalue(f"{request.param}_store")


def both(experiments, client, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    from mlops_wb.tracking import load_runs

    return (load_runs(experiments, client=client, reader="tables", **kwargs),
            load_runs(experiments, client=client, reader="client", **kwargs))


CALLS = [
    {},
    {"include_deleted": True},
    {"max_runs": 7},
    {"order_by": ["metrics.acc DESC"]},
    {"order_by": ["metrics.acc", "params.model DESC"], "max_runs": 15},
    {"order_by": ["tags.note", "attributes.end_time"]},
    {"order_by": ["attributes.run_name DESC"], "include_deleted": True},
    {"filter_string": "params.model != 'rf'"},
    {"filter_string": "metrics.acc != 0.5", "include_deleted": True},
    {"filter_string": "tags.note ILIKE '%o%' and attributes.status = 'FINISHED'", "order_by": ["metrics.loss"]},
    {"filter_string": "params.depth IS NULL", "max_runs": 3},
    {"filter_string": "attributes.run_name LIKE 'run-0%'"},
]


@pytest.mark.parametrize("call", CALLS, ids=lambda c: ", ".join(f"{k}={v}" for k, v in c.items()) or "all")
def test_tables_equal_the_client(store, call):
    from mlops_wb.core import get_client

    uri, made = store
    client = get_client(uri)
    for experiments in (made["exps"][0], made["exps"]):
        ours, theirs = both(experiments, client, **call)
        assert len(theirs) > 0
        pd.testing.assert_frame_equal(ours, theirs)  # columns, dtypes, values, order, index
        assert list(ours.columns) == list(theirs.columns) and ours.attrs == theirs.attrs


def test_the_varied_runs_are_all_there(store):
    from mlops_wb.core import get_client
    from mlops_wb.tracking import load_runs

    uri, made = store
    client = get_client(uri)
    runs = load_runs(made["exps"], client=client, include_deleted=True)
    assert len(runs) == 40 and set(runs.lifecycle_stage) == {"active", "deleted"}
    assert runs["metrics.acc"].isna().sum() > 0 and (runs["metrics.acc"] == 1.7976931348623157e308).any()
    assert sum(c.startswith("tags.t") and c[6:].isdigit() for c in runs.columns) == TAGS
    assert runs.set_index("run_id").loc[made["ids"][5], "run_name"].startswith("run-05")  # from the tag
    assert runs.set_index("run_id").loc[made["ids"][13], "end_time"] is pd.NaT
    assert runs["params.model"].isna().any() and "日本" in set(runs["params.model"])
    assert (runs["tags.mlflow.parentRunId"] == made["ids"][0]).sum() == 3


def test_same_as_mlflow_search_runs(store):
    "The frame holds mlflow.search_runs' columns with its values, in its order."
    import mlflow

    from mlops_wb.core import get_client
    from mlops_wb.tracking import load_runs

    uri, made = store
    ours = load_runs(made["exps"], client=get_client(uri))
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        theirs = mlflow.search_runs(experiment_ids=made["exps"], max_results=100_000)
    finally:
        mlflow.set_tracking_uri(previous)
    assert set(theirs.columns) <= set(ours.columns)
    pd.testing.assert_frame_equal(ours[theirs.columns], theirs, check_dtype=False)


def test_pages_first_small_then_the_rest(store):
    "iter_run_pages' contract: a small first page, every run once in load_runs' order, on both readers."
    from mlops_wb.core import get_client
    from mlops_wb.tracking import FIRST_PAGE, iter_run_pages, load_runs

    uri, made = store
    client = get_client(uri)
    assert FIRST_PAGE == 100
    full = load_runs(made["exps"], client=client)
    for reader in ("tables", "client"):
        pages = list(iter_run_pages(made["exps"], first_page=5, page_size=11, client=client, as_frames=True,
                                    reader=reader))
        assert [len(p) for p in pages] == [5, 11, 11, 11]
        got = pd.concat(pages, ignore_index=True)
        assert got.run_id.tolist() == full.run_id.tolist()
        pd.testing.assert_frame_equal(got[full.columns], full, check_dtype=False)
        filtered = list(iter_run_pages(made["exps"], filter_string="params.model = 'rf'", first_page=2, page_size=3,
                                       client=client, as_frames=True, reader=reader))
        assert [len(p) for p in filtered][:2] == [2, 3]
        assert pd.concat(filtered).run_id.tolist() == load_runs(made["exps"], filter_string="params.model = 'rf'",
                                                               client=client).run_id.tolist()
    entities = list(iter_run_pages(made["exps"], first_page=5, page_size=11, client=client))  # lists of Run
    assert [r.info.run_id for p in entities for r in p] == full.run_id.tolist()
    assert len(entities[0]) == 5 and all(hasattr(r, "inputs") for r in entities[0])


def test_histories_from_the_tables_equal_the_client(store):
    from mlops_wb.core import get_client
    from mlops_wb.tracking import metric_histories, tables

    uri, made = store
    client = get_client(uri)
    ids = made["ids"][:12]
    ours = metric_histories(ids, ["acc", "loss", "nothing"], client=client)
    rows = []
    for r in ids:
        for key in ("acc", "loss"):
            rows += [(r, key, m.step, m.timestamp, m.value) for m in client.get_metric_history(r, key)]
    assert len(ours) == len(rows) > 0
    ms = (ours.timestamp - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    mine = sorted(map(repr, zip(ours.run_id, ours.key, ours.step, ms, ours.value, strict=True)))
    assert mine == sorted(map(repr, rows))  # repr: NaN equals NaN
    assert tables.table_reader(client) is not None


def test_an_unlisted_revision_is_read_through_the_client(sqlite_store, monkeypatch):
    "A store at a revision the reader does not know is read through MLflow's client, with the same frame."
    from mlops_wb.core import get_client
    from mlops_wb.tracking import load_runs, tables

    uri, made = sqlite_store
    client = get_client(uri)
    before = load_runs(made["exps"], client=client)
    monkeypatch.setattr(tables, "MLFLOW_SCHEMA_REVISIONS", ("0000deadbeef",))
    assert tables.table_reader(client) is None
    with pytest.raises(TrackingError, match="schema revision 'dc11669786a5' is not one the workbench reads"):
        load_runs(made["exps"], client=client, reader="tables")
    pd.testing.assert_frame_equal(load_runs(made["exps"], client=client), before)


def test_a_store_from_a_newer_mlflow_gives_one_clear_error(sqlite_store, tmp_path):
    "A store migrated past this MLflow (its revision unknown to both) is refused in one line, not read wrongly."
    import sqlite3

    from mlops_wb.core import get_client
    from mlops_wb.tracking import load_runs

    uri, made = sqlite_store
    db = tmp_path / "newer.db"
    shutil.copy(uri[len("sqlite:///"):], db)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE alembic_version SET version_num = '0000deadbeef'")
    with pytest.raises(TrackingError) as e:
        load_runs("tables-a", client=get_client(f"sqlite:///{db}"))
    assert "0000deadbeef" in str(e.value) and "\n" not in str(e.value)


def test_a_tracking_server_is_read_through_the_client(mlflow_server):
    from mlops_wb.core import get_client
    from mlops_wb.tracking import load_runs, tables

    client = get_client(mlflow_server)
    made = populate(client, "http")
    assert tables.table_reader(client) is None
    with pytest.raises(TrackingError, match="cannot be read directly"):
        load_runs(made["exps"], client=client, reader="tables")
    t0 = time.perf_counter()
    runs = load_runs(made["exps"], client=client, include_deleted=True)
    assert len(runs) == 40 and time.perf_counter() - t0 < 120


ORDER_KEYS = ["metrics.acc", "metrics.loss", "metrics.nothing", "params.model", "params.depth", "tags.note",
              "attributes.start_time", "attributes.end_time", "attributes.run_name", "attributes.status"]
FILTERS = [None, "params.model != 'rf'", "metrics.acc != 0.5", "metrics.loss < 0.3", "tags.note LIKE '%o%'",
           "params.depth IS NOT NULL and attributes.status != 'KILLED'", "metrics.acc >= 0", "params.nothing = 'x'"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(order=st.lists(st.tuples(st.sampled_from(ORDER_KEYS), st.sampled_from(["", " ASC", " DESC"])),
                      max_size=3, unique_by=lambda o: o[0]),
       filter_string=st.sampled_from(FILTERS), max_runs=st.one_of(st.none(), st.integers(1, 45)),
       include_deleted=st.booleans(), which=st.sampled_from([0, 1, 2]))
def test_random_loads_equal_the_client(sqlite_store, order, filter_string, max_runs, include_deleted, which):
    "Any mix of order, filter, limit and view: the tables give the client's frame, or both refuse."
    from mlops_wb.core import get_client

    uri, made = sqlite_store
    experiments = [made["exps"][0], made["exps"][1], made["exps"]][which]
    call = {"order_by": [k + d for k, d in order] or None, "filter_string": filter_string, "max_runs": max_runs,
            "include_deleted": include_deleted}
    ours, theirs = both(experiments, get_client(uri), **call)
    pd.testing.assert_frame_equal(ours, theirs)
    assert ours.attrs == theirs.attrs
