"""Filters agree with MLflow's own search: MLflow's search-filter test cases, ported, on a real SQLite store.

The cases come from MLflow's `tests/store/tracking/test_sqlalchemy_store.py` (test_search_params, _tags, _metrics,
_attrs, _full, _runs_run_name, _runs_run_id, _runs_start_time_alias, the order_by tests) and
`tests/utils/test_search_utils.py` (parsing, errors, filtering, sorting of NaN and infinities). Each case runs
three ways and must give exactly what `MlflowClient.search_runs` gives on the same store: `filter_runs` in MLflow
syntax on a loaded frame, `load_runs(filter_string=...)` reading MLflow's tables, and, where the pandas syntax can
say the same, `filter_runs` with a pandas expression. The deliberate differences are named in their own tests.
"""
from __future__ import annotations

import math
import re
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_wb.core import InvalidParameterError, MlopsWbError


@pytest.fixture(scope="module")
def client(tmp_path_factory, sqlite_template):
    from mlops_wb.core import get_client

    db = tmp_path_factory.mktemp("filters") / "mlflow.db"
    shutil.copy(sqlite_template, db)
    return get_client(f"sqlite:///{db}")


def new_experiment(client, name: str) -> str:
    from mlops_wb.core import ensure_experiment

    return ensure_experiment(name, client=client)


def new_run(client, exp: str, **kwargs) -> str:
    return client.create_run(exp, **kwargs).info.run_id


def theirs(client, exps, text: str, order_by=None) -> list[str]:
    "MLflow's answer: run ids in MLflow's order."
    return [r.info.run_id for r in client.search_runs(exps if isinstance(exps, list) else [exps], text,
                                                      order_by=order_by, max_results=50_000)]


def check(client, exps, text: str, pandas: str | None = None) -> list[str]:
    "Assert every way of filtering gives MLflow's runs; return them (sorted)."
    from mlops_wb.tracking import filter_runs, load_runs

    exps = exps if isinstance(exps, list) else [exps]
    expected = sorted(theirs(client, exps, text))
    frame = load_runs(exps, client=client, reader="client")
    assert sorted(filter_runs(frame, text, syntax="mlflow").run_id) == expected, text
    assert sorted(filter_runs(frame, text).run_id) == expected, text  # syntax="auto" takes it as MLflow's
    assert sorted(load_runs(exps, filter_string=text, client=client, reader="tables").run_id) == expected, text
    assert sorted(load_runs(exps, filter_string=text, client=client, reader="client").run_id) == expected, text
    if pandas is not None:
        assert sorted(filter_runs(frame, pandas, syntax="pandas").run_id) == expected, pandas
    return expected


# --- tests/store/tracking/test_sqlalchemy_store.py ---------------------------------------------------------------

def test_search_params(client):
    from mlflow.entities import Param

    exp = new_experiment(client, "search_params")
    r1, r2 = new_run(client, exp), new_run(client, exp)
    for r, extra in ((r1, [Param("generic_2", "some value"), Param("p_a", "abc")]),
                     (r2, [Param("generic_2", "another value"), Param("p_b", "ABC")])):
        client.log_batch(r, params=[Param("generic_param", "p_val"), *extra])
    both, one, two = sorted([r1, r2]), [r1], [r2]
    cases = [
        ("params.generic_param = 'p_val'", "params.generic_param == 'p_val'", both),
        ("params.generic_2 = 'some value'", "params.generic_2 == 'some value'", one),
        ("params.generic_2 = 'another value'", "params.generic_2 == 'another value'", two),
        ("params.generic_param = 'wrong_val'", "params.generic_param == 'wrong_val'", []),
        ("params.generic_param != 'p_val'", "params.generic_param != 'p_val'", []),
        ("params.generic_param != 'wrong_val'", "params.generic_param != 'wrong_val'", both),
        ("params.generic_2 != 'wrong_val'", "params.generic_2 != 'wrong_val'", both),
        ("params.p_a = 'abc'", "params.p_a == 'abc'", one),
        ("params.p_a = 'ABC'", "params.p_a == 'ABC'", []),
        ("params.p_a != 'ABC'", "params.p_a != 'ABC'", one),  # r2 has no p_a: it never matches
        ("params.p_b = 'ABC'", "params.p_b == 'ABC'", two),
        ("params.generic_2 LIKE '%other%'", None, two),
        ("params.generic_2 LIKE 'other%'", None, []),
        ("params.generic_2 LIKE '%other'", None, []),
        ("params.generic_2 LIKE 'other'", None, []),
        ("params.generic_2 LIKE '%Other%'", None, []),
        ("params.generic_2 ILIKE '%Other%'", None, two),
    ]
    for text, pandas, expected in cases:
        assert check(client, exp, text, pandas) == sorted(expected), text


def test_search_tags(client):
    from mlflow.entities import RunTag

    exp = new_experiment(client, "search_tags")
    r1, r2 = new_run(client, exp), new_run(client, exp)
    for r, extra in ((r1, [RunTag("generic_2", "some value"), RunTag("p_a", "abc")]),
                     (r2, [RunTag("generic_2", "another value"), RunTag("p_b", "ABC")])):
        client.log_batch(r, tags=[RunTag("generic_tag", "p_val"), *extra])
    both, one, two = sorted([r1, r2]), [r1], [r2]
    cases = [
        ("tags.generic_tag = 'p_val'", "tags.generic_tag == 'p_val'", both),
        ("tags.generic_tag = 'P_VAL'", "tags.generic_tag == 'P_VAL'", []),
        ("tags.generic_tag != 'P_VAL'", "tags.generic_tag != 'P_VAL'", both),
        ("tags.generic_2 = 'some value'", "tags.generic_2 == 'some value'", one),
        ("tags.generic_2 = 'another value'", None, two),
        ("tags.generic_tag = 'wrong_val'", None, []),
        ("tags.generic_tag != 'p_val'", "tags.generic_tag != 'p_val'", []),
        ("tags.generic_tag != 'wrong_val'", None, both),
        ("tags.generic_2 != 'wrong_val'", None, both),
        ("tags.p_a = 'abc'", "tags.p_a == 'abc'", one),
        ("tags.p_b = 'ABC'", None, two),
        ("tags.generic_2 LIKE '%other%'", None, two),
        ("tags.generic_2 LIKE '%Other%'", None, []),
        ("tags.generic_2 LIKE 'other%'", None, []),
        ("tags.generic_2 LIKE '%other'", None, []),
        ("tags.generic_2 LIKE 'other'", None, []),
        ("tags.generic_2 ILIKE '%Other%'", None, two),
        ("tags.generic_2 ILIKE '%Other%' and tags.generic_tag = 'p_val'", None, two),
        ("tags.generic_2 ILIKE '%Other%' and tags.generic_tag ILIKE 'p_val'", None, two),
    ]
    for text, pandas, expected in cases:
        assert check(client, exp, text, pandas) == sorted(expected), text


def test_search_metrics(client):
    from mlflow.entities import Metric

    exp = new_experiment(client, "search_metric")
    r1, r2 = new_run(client, exp), new_run(client, exp)
    client.log_batch(r1, metrics=[Metric("common", 1.0, 1, 0), Metric("measure_a", 1.0, 1, 0), Metric("m_a", 2.0, 2, 0)])
    client.log_batch(r2, metrics=[Metric("common", 1.0, 1, 0), Metric("measure_a", 200.0, 2, 0),
                                  Metric("measure_a", 400.0, 3, 0), Metric("m_b", 3.0, 2, 0),
                                  Metric("m_b", 4.0, 8, 0), Metric("m_b", 8.0, 3, 0)])
    both, one, two = sorted([r1, r2]), [r1], [r2]
    cases = [
        ("metrics.common = 1.0", both), ("metrics.common > 0.0", both), ("metrics.common >= 0.0", both),
        ("metrics.common < 4.0", both), ("metrics.common <= 4.0", both), ("metrics.common != 1.0", []),
        ("metrics.common >= 3.0", []), ("metrics.common <= 0.75", []), ("metrics.measure_a > 0.0", both),
        ("metrics.measure_a < 50.0", one), ("metrics.measure_a < 1000.0", both), ("metrics.measure_a != -12.0", both),
        ("metrics.measure_a > 50.0", two), ("metrics.measure_a = 1.0", one), ("metrics.measure_a = 400.0", two),
        ("metrics.m_a > 1.0", one), ("metrics.m_b > 1.0", two),
        ("metrics.m_b > 5.0", []),  # a value above 5 was logged, but not last
        ("metrics.m_b = 4.0", two),  # the value of the last timestamp
    ]
    for text, expected in cases:
        pandas = text.replace(" = ", " == ")
        assert check(client, exp, text, pandas) == sorted(expected), text


def test_search_attrs(client):
    e1, e2 = new_experiment(client, "search_attributes_1"), new_experiment(client, "search_attrs_2")
    r1, r2 = new_run(client, e1), new_run(client, e2)
    both = sorted([r1, r2])
    for text, expected in [("", both), ("attribute.status != 'blah'", both), ("attribute.status = 'RUNNING'", both)]:
        assert check(client, [e1, e2], text) == expected, text
    client.set_terminated(r2, "FAILED")
    uri = client.get_run(r1).info.artifact_uri
    cases = [
        ("attribute.status = 'RUNNING'", "status == 'RUNNING'", [r1]),
        ("attribute.status = 'FAILED'", "status == 'FAILED'", [r2]),
        ("attribute.status != 'SCHEDULED'", "status != 'SCHEDULED'", both),
        ("attribute.status = 'SCHEDULED'", None, []),
        ("attribute.status = 'KILLED'", None, []),
        (f"attr.artifact_uri = '{uri}'", f"artifact_uri == '{uri}'", [r1]),
        (f"attr.artifact_uri = '{uri.upper()}'", None, []),
        (f"attr.artifact_uri != '{uri.upper()}'", None, both),
        ("attribute.artifact_uri = 'random_artifact_path'", None, []),
        ("attribute.artifact_uri != 'random_artifact_path'", None, both),
        (f"attribute.artifact_uri LIKE '%{r1}%'", None, [r1]),
        (f"attribute.artifact_uri LIKE '%{r1[:16]}%'", None, [r1]),
        (f"attribute.artifact_uri LIKE '%{r1[-16:]}%'", None, [r1]),
        (f"attribute.artifact_uri LIKE '%{r1.upper()}%'", None, []),
        (f"attribute.artifact_uri ILIKE '%{r1.upper()}%'", None, [r1]),
        (f"attribute.artifact_uri ILIKE '%{r1[:16].upper()}%'", None, [r1]),
        (f"attribute.artifact_uri ILIKE '%{r1[-16:].upper()}%'", None, [r1]),
    ]
    for text, pandas, expected in cases:
        assert check(client, [e1, e2], text, pandas) == sorted(expected), text
    from mlops_wb.tracking import filter_runs, load_runs

    frame = load_runs([e1, e2], client=client)
    for k, v in {"experiment_id": e1, "lifecycle_stage": "ACTIVE"}.items():
        with pytest.raises(InvalidParameterError, match=r"Invalid attribute key '.+' specified"):
            filter_runs(frame, f"attribute.{k} = '{v}'")
        with pytest.raises(InvalidParameterError, match=r"Invalid attribute key '.+' specified"):
            load_runs([e1, e2], filter_string=f"attribute.{k} = '{v}'", client=client)


def test_search_full(client):
    from mlflow.entities import Metric, Param

    exp = new_experiment(client, "search_full")
    r1, r2 = new_run(client, exp), new_run(client, exp)
    client.log_batch(r1, params=[Param("generic_param", "p_val"), Param("p_a", "abc")],
                     metrics=[Metric("common", 1.0, 1, 0), Metric("m_a", 2.0, 2, 0)])
    client.log_batch(r2, params=[Param("generic_param", "p_val"), Param("p_b", "ABC")],
                     metrics=[Metric("common", 1.0, 1, 0), Metric("m_b", 3.0, 2, 0), Metric("m_b", 4.0, 8, 0),
                              Metric("m_b", 8.0, 3, 0)])
    base = "params.generic_param = 'p_val' and metrics.common = 1.0"
    cases = [
        (base, sorted([r1, r2])),
        (f"{base} and metrics.m_a > 1.0", [r1]),
        (f"{base} and metrics.m_a > 1.0 and params.p_a LIKE 'a%'", [r1]),
        (f"{base} and metrics.m_a > 1.0 and params.p_a LIKE 'A%'", []),
        (f"{base} and metrics.m_a > 1.0 and params.p_a ILIKE 'A%'", [r1]),
        ("params.random_bad_name = 'p_val' and metrics.common = 1.0 and metrics.m_a > 1.0", []),
        (f"{base} and metrics.m_a > 100.0", []),
    ]
    for text, expected in cases:
        assert check(client, exp, text) == expected, text
    assert check(client, exp, base, "params.generic_param == 'p_val' and metrics.common == 1.0") == sorted([r1, r2])


def test_search_runs_run_name(client):
    exp = new_experiment(client, "search_run_name")
    r1, r2 = new_run(client, exp, run_name="run_name1"), new_run(client, exp, run_name="run_name2")
    for text, expected in [("attributes.run_name = 'run_name1'", [r1]), ("attributes.`Run name` = 'run_name1'", [r1]),
                           ("attributes.`run name` = 'run_name2'", [r2]), ("attributes.`Run Name` = 'run_name2'", [r2]),
                           ("tags.`mlflow.runName` = 'run_name2'", [r2])]:
        assert check(client, exp, text, None) == expected, text
    assert check(client, exp, "attributes.run_name = 'run_name1'", "run_name == 'run_name1'") == [r1]
    client.update_run(r1, name="new_run_name1")
    assert check(client, exp, "attributes.run_name = 'new_run_name1'") == [r1]


def test_search_runs_run_id(client):
    exp = new_experiment(client, "search_run_id")
    r1, r2 = new_run(client, exp, start_time=1), new_run(client, exp, start_time=2)
    assert check(client, exp, f"attributes.run_id = '{r1}'", f"run_id == '{r1}'") == [r1]
    assert check(client, exp, f"attributes.run_id != '{r1}'", f"run_id != '{r1}'") == [r2]
    assert check(client, exp, f"attributes.run_id IN ('{r1}')", f"run_id in ['{r1}']") == [r1]
    assert check(client, exp, f"attributes.run_id NOT IN ('{r1}')", f"run_id not in ['{r1}']") == [r2]
    assert check(client, exp, f"run_name = '{client.get_run(r1).info.run_name}' AND run_id IN ('{r1}')") == [r1]
    for text in [f"attributes.run_id IN ('{r1}','{r2}')", f"attributes.run_id IN ('{r1}', '{r2}')",
                 f"attributes.run_id IN ('{r1}',  '{r2}')"]:
        assert check(client, exp, text) == sorted([r1, r2]), text
    assert check(client, exp, f"attributes.run_id NOT IN ('{r1}', '{r2}')") == []


def test_search_runs_start_time_alias(client):
    exp = new_experiment(client, "search_start_time")
    r1, r2 = new_run(client, exp, start_time=1), new_run(client, exp, start_time=2)
    assert check(client, exp, "attributes.start_time > 0") == sorted([r1, r2])
    assert check(client, exp, "attributes.created > 1") == [r2]
    assert check(client, exp, "attributes.Created > 2") == []
    assert check(client, exp, "attributes.end_time > 0") == []  # running runs have no end time


def test_order_by_like_mlflow(client):
    "MLflow's sorting cases, and NaN, infinities and missing values, in MLflow's order on both readers."
    from mlflow.entities import Metric, Param, RunTag

    from mlops_wb.tracking import load_runs

    exp = new_experiment(client, "order_by")
    spec = [("FAILED", 0, 121, "A", None), ("FINISHED", 1, 123, "A", "C"), ("FAILED", 1, 125, "B", "D")]
    for status, start, value, param, tag in spec:
        r = new_run(client, exp, start_time=start)
        client.log_batch(r, metrics=[Metric("key1", value, 1, 0)], params=[Param("my_param", param)],
                         tags=[RunTag("tag1", tag)] if tag else [])
        client.set_terminated(r, status)
    for x in ["nan", "inf", "-inf", "-1000", "0", "1000", "None"]:
        r = new_run(client, exp, start_time=5, run_name=f"x={x}")
        if x != "None":
            client.log_batch(r, metrics=[Metric("x", float(x), 1, 0)])
    cases = [None, [], ["tags.noSuchTag"], ["attributes.status"], ["attributes.start_time"], ["metrics.key1 asc"],
             ['metrics."key1"  desc'], ["params.my_param"], ["params.my_param aSc", "attributes.status  ASC"],
             ["params.my_param", "attributes.status DESC"], ["params.my_param DESC", "attributes.status   DESC"],
             ["params.`my_param` DESC", "attributes.status DESC"], ["tags.tag1"], ["tags.tag1    DESC"],
             ["metrics.x asc"], ["metrics.x desc"], ["attributes.run_name"], ["attributes.end_time DESC"]]
    for order in cases:
        expected = theirs(client, exp, "", order_by=order)
        for reader in ("tables", "client"):
            got = load_runs(exp, order_by=order, client=client, reader=reader).run_id.tolist()
            assert got == expected, (order, reader)
        got = load_runs(exp, order_by=order, filter_string="attributes.start_time >= 1", client=client)
        assert got.run_id.tolist() == theirs(client, exp, "attributes.start_time >= 1", order_by=order), order
    names = load_runs(exp, order_by=["metrics.x asc"], filter_string="attributes.start_time = 5", client=client)
    assert names.run_name.tolist() == [f"x={x}" for x in ["-inf", "-1000", "0", "1000", "inf", "nan", "None"]]
    with pytest.raises(InvalidParameterError, match="duplicate fields"):
        load_runs(exp, order_by=["metrics.x", "metrics.x DESC"], client=client)


# --- tests/utils/test_search_utils.py ----------------------------------------------------------------------------

PARSED = [
    ("metric.acc >= 0.94", [{"comparator": ">=", "key": "acc", "type": "metric", "value": "0.94"}]),
    ("metric.acc>=100", [{"comparator": ">=", "key": "acc", "type": "metric", "value": "100"}]),
    ("params.m!='tf'", [{"comparator": "!=", "key": "m", "type": "parameter", "value": "tf"}]),
    ('params."m"!="tf"', [{"comparator": "!=", "key": "m", "type": "parameter", "value": "tf"}]),
    ('metric."legit name" >= 0.243', [{"comparator": ">=", "key": "legit name", "type": "metric", "value": "0.243"}]),
    ("metrics.XYZ = 3", [{"comparator": "=", "key": "XYZ", "type": "metric", "value": "3"}]),
    ('params."cat dog" = "pets"', [{"comparator": "=", "key": "cat dog", "type": "parameter", "value": "pets"}]),
    ('metrics."X-Y-Z" = 3', [{"comparator": "=", "key": "X-Y-Z", "type": "metric", "value": "3"}]),
    ('metrics."X//Y#$$@&Z" = 3', [{"comparator": "=", "key": "X//Y#$$@&Z", "type": "metric", "value": "3"}]),
    ("params.model = 'LinearRegression'",
     [{"comparator": "=", "key": "model", "type": "parameter", "value": "LinearRegression"}]),
    ("metrics.rmse < 1 and params.model_class = 'LR'",
     [{"comparator": "<", "key": "rmse", "type": "metric", "value": "1"},
      {"comparator": "=", "key": "model_class", "type": "parameter", "value": "LR"}]),
    ("", []),
    ("`metric`.a >= 0.1", [{"comparator": ">=", "key": "a", "type": "metric", "value": "0.1"}]),
    ("tags.version = 'commit-hash'", [{"comparator": "=", "key": "version", "type": "tag", "value": "commit-hash"}]),
    ("`tags`.source_name = 'a notebook'",
     [{"comparator": "=", "key": "source_name", "type": "tag", "value": "a notebook"}]),
    ('metrics."accuracy.2.0" > 5', [{"comparator": ">", "key": "accuracy.2.0", "type": "metric", "value": "5"}]),
    ("metrics.`spacey name` > 5", [{"comparator": ">", "key": "spacey name", "type": "metric", "value": "5"}]),
    ('params."p.a.r.a.m" != "a"', [{"comparator": "!=", "key": "p.a.r.a.m", "type": "parameter", "value": "a"}]),
    ('tags."t.a.g" = "a"', [{"comparator": "=", "key": "t.a.g", "type": "tag", "value": "a"}]),
    ("attribute.artifact_uri = '1/23/4'",
     [{"type": "attribute", "comparator": "=", "key": "artifact_uri", "value": "1/23/4"}]),
    # MLflow 3.17 parses a numeric attribute's value as a number (the upstream case, written earlier, has '1234')
    ("attribute.start_time >= 1234", [{"type": "attribute", "comparator": ">=", "key": "start_time", "value": 1234}]),
    ("run.status = 'RUNNING'", [{"type": "attribute", "comparator": "=", "key": "status", "value": "RUNNING"}]),
    ("dataset.name = 'my_dataset'", [{"type": "dataset", "comparator": "=", "key": "name", "value": "my_dataset"}]),
    ("tags.version IS NULL", [{"comparator": "IS NULL", "key": "version", "type": "tag", "value": None}]),
    ("params.lr IS NOT NULL", [{"comparator": "IS NOT NULL", "key": "lr", "type": "parameter", "value": None}]),
    ("tags.a IS NULL AND params.b = 'val'", [{"comparator": "IS NULL", "key": "a", "type": "tag", "value": None},
                                             {"comparator": "=", "key": "b", "type": "parameter", "value": "val"}]),
    ("params.m = 'LR'", [{"type": "parameter", "comparator": "=", "key": "m", "value": "LR"}]),
    ('params.m = "L\'Hosp"', [{"type": "parameter", "comparator": "=", "key": "m", "value": "L'Hosp"}]),
]


@pytest.mark.parametrize(("text", "parsed"), PARSED)
def test_parse_like_mlflow(text, parsed):
    from mlops_wb.tracking import parse_mlflow_filter

    assert parse_mlflow_filter(text) == parsed


ERRORS = [
    ("metric.acc >= 0.94; metrics.rmse < 1", "Search filter contained multiple expression"),
    ("m.acc >= 0.94", "Invalid entity type"), ("acc >= 0.94", "Invalid attribute key"),
    ("p.model >= 'LR'", "Invalid entity type"), ("attri.x != 1", "Invalid entity type"),
    ("model >= 'LR'", "Invalid attribute key"), ("metrics.A > 0.1 OR params.B = 'LR'", "Invalid clause(s) in filter string"),
    ("metrics.A > 0.1 NAND params.B = 'LR'", "Invalid clause(s) in filter string"),
    ("metrics.A > 0.1 AND (params.B = 'LR')", "Invalid clause(s) in filter string"),
    ("`metrics.A > 0.1", "Invalid clause(s) in filter string"), ("attribute.start != 1", "Invalid attribute key"),
    ("attribute.experiment_id != 1", "Invalid attribute key"), ("attribute.lifecycle_stage = 'ACTIVE'", "Invalid attribute key"),
    ("attribute.status = true", "Invalid clause(s) in filter string"), ("dataset.status = 'true'", "Invalid dataset key"),
    ("metrics.acc IS NULL", "IS NULL / IS NOT NULL is only supported for tags and params"),
    ("attribute.status IS NULL", "IS NULL / IS NOT NULL is only supported for tags and params"),
    ("metric.model = 'LR'", "Expected numeric value type for metric"), ("params.acc = 5", "Expected a quoted string value for param"),
    ("tags.acc = 5", "Expected a quoted string value for tag"), ("1.0 > metrics.acc", "Expected 'Identifier' found"),
    ("attribute.status = 1", "Expected a quoted string value for attributes"),
    ("params.acc = LR", "value is either not quoted or unidentified quote types"),
    ("params.acc = 'LR", "Invalid clause(s) in filter string"), ("tags.acc = = 'LR'", "Invalid clause(s) in filter string"),
    ("params.acc LR !=", "Invalid clause(s) in filter string"), ("metric.acc !=", "Invalid clause(s) in filter string"),
    ("1=1", "Expected 'Identifier' found"),
    # comparators MLflow's store refuses (test_bad_comparators), and the issue's example
    ("metrics.abc ~ 1.0", "Invalid comparator"), ("params.abc > 'my-param-value'", "Invalid comparator"),
    ("tags.abc <= 'my-tag-value'", "Invalid comparator"), ("attributes.status >= 'x'", "Invalid comparator"),
    ("attributes.start_time LIKE 1234", "Invalid comparator"), ("datasets.name > 'x'", "Invalid comparator"),
    ("metrics.x >>> 3", "Invalid comparator '>>>'"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_errors_like_mlflow(client, text, message):
    "A filter MLflow refuses is refused here too, by every entry point, with MLflow's reason in one line."
    from mlops_wb.tracking import filter_runs, load_runs

    exp = new_experiment(client, "errors")
    with pytest.raises(Exception, match=re.escape(message)):
        client.search_runs([exp], text)
    frame = load_runs(exp, client=client)
    for call in (lambda: filter_runs(frame, text, syntax="mlflow"), lambda: load_runs(exp, filter_string=text, client=client)):
        with pytest.raises(InvalidParameterError, match=re.escape(message)) as e:
            call()
        assert "\n" not in str(e.value)


def test_filtering_and_null_checks_like_mlflow(client):
    "test_correct_filtering and test_filter_runs_by_tag_and_param_is_null, on a store."
    from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag

    exp = new_experiment(client, "correct_filtering")
    runs = []
    for status, value, param, tag, ds, context in [("FAILED", 121, "A", None, "name1", "train"),
                                                   ("FINISHED", 123, "A", "C", "name1", None),
                                                   ("FAILED", 125, "B", "D", "name2", None)]:
        r = new_run(client, exp)
        client.log_batch(r, metrics=[Metric("key1", value, 1, 0)], params=[Param("my_param", param)],
                         tags=[RunTag("tag1", tag)] if tag else [])
        dataset = Dataset(name=ds, digest=ds.replace("name", "digest"), source_type="my_source_type", source="source")
        client.log_inputs(r, [DatasetInput(dataset, [InputTag("mlflow.data.context", context)] if context else [])])
        client.set_terminated(r, status)
        runs.append(r)
    cases = [("", [0, 1, 2]), ("attributes.status = 'FAILED'", [0, 2]), ("metrics.key1 = 123", [1]),
             ("metrics.key1 != 123", [0, 2]), ("metrics.key1 >= 123", [1, 2]), ("params.my_param = 'A'", [0, 1]),
             ("tags.tag1 = 'D'", [2]), ("tags.tag1 != 'D'", [1]), ("params.my_param = 'A' AND attributes.status = 'FAILED'", [0]),
             ("tags.tag1 IS NOT NULL", [1, 2]), ("tags.tag1 IS NULL", [0]), ("params.my_param IS NOT NULL", [0, 1, 2]),
             ("params.nothing IS NULL", [0, 1, 2])]
    for text, idx in cases:
        assert check(client, exp, text) == sorted(runs[i] for i in idx), text
    from mlops_wb.tracking import load_runs

    for text, idx in [("datasets.name = 'name1'", [0, 1]), ("datasets.name IN ('name1', 'name2')", [0, 1, 2]),
                      ("datasets.digest IN ('digest1', 'digest2')", [0, 1, 2]), ("datasets.context = 'train'", [0]),
                      ("datasets.name = 'name1' AND datasets.digest = 'digest2'", []),
                      ("datasets.name = 'name1' AND datasets.context = 'train'", [0])]:
        expected = sorted(runs[i] for i in idx)
        assert sorted(theirs(client, exp, text)) == expected, text
        assert sorted(load_runs(exp, filter_string=text, client=client).run_id) == expected, text


# --- the deliberate differences ------------------------------------------------------------------------------------

def test_difference_or_and_not_exist_only_in_the_pandas_syntax(client):
    "MLflow has no OR; a pandas expression's `or` is the union of two MLflow searches, `not` keeps SQL's NULL logic."
    from mlflow.entities import Param

    from mlops_wb.tracking import filter_runs, load_runs

    exp = new_experiment(client, "or_not")
    ids = [new_run(client, exp) for _ in range(4)]
    for r, m in zip(ids, ["tf", "torch", "jax", None], strict=True):
        if m:
            client.log_batch(r, params=[Param("m", m)])
    with pytest.raises(Exception, match="Invalid clause"):
        client.search_runs([exp], "params.m = 'tf' OR params.m = 'jax'")
    frame = load_runs(exp, client=client)
    union = sorted(set(theirs(client, exp, "params.m = 'tf'")) | set(theirs(client, exp, "params.m = 'jax'")))
    assert sorted(filter_runs(frame, "params.m == 'tf' or params.m == 'jax'").run_id) == union
    # `not (m == 'tf')` is not `m != 'tf'` for a run without m in Python, but it is in SQL's logic: no match
    assert sorted(filter_runs(frame, "not (params.m == 'tf')").run_id) == sorted(theirs(client, exp, "params.m != 'tf'"))


def test_difference_a_dangling_and_is_refused(client):
    "MLflow ignores a trailing `and` (it answers as if it were not there); the workbench refuses the unfinished filter."
    from mlflow.entities import Param

    from mlops_wb.tracking import filter_runs, load_runs

    exp = new_experiment(client, "dangling")
    r = new_run(client, exp)
    client.log_batch(r, params=[Param("m", "a")])
    assert theirs(client, exp, "params.m = 'a' and") == [r]
    for text in ["params.m = 'a' and", "and params.m = 'a'", "params.m = 'a' and and params.m = 'a'"]:
        with pytest.raises(InvalidParameterError, match="an 'and' with no condition"):
            load_runs(exp, filter_string=text, client=client)
        with pytest.raises(InvalidParameterError):
            filter_runs(load_runs(exp, client=client), text)


def test_difference_datasets_need_the_store(client):
    "A loaded frame holds no datasets: filter_runs refuses `datasets.*`, load_runs hands it to the store."
    from mlops_wb.tracking import filter_runs, load_runs

    exp = new_experiment(client, "datasets_only_in_store")
    new_run(client, exp)
    with pytest.raises(InvalidParameterError, match="pass the filter to load_runs"):
        filter_runs(load_runs(exp, client=client), "datasets.name = 'x'")
    with pytest.raises(Exception, match="needs the client"):
        load_runs(exp, filter_string="datasets.name = 'x'", client=client, reader="tables")
    assert load_runs(exp, filter_string="datasets.name = 'x'", client=client).empty


def test_difference_a_blank_filter_keeps_every_run(client):
    "MLflow's parser refuses a filter of only spaces; here it is an empty filter box."
    from mlops_wb.tracking import filter_runs, load_runs

    exp = new_experiment(client, "blank")
    new_run(client, exp)
    with pytest.raises(Exception, match="Could not be parsed"):
        client.search_runs([exp], "   ")
    assert len(load_runs(exp, filter_string="   ", client=client)) == 1
    assert len(filter_runs(load_runs(exp, client=client), "   ")) == 1


# --- the issue's cases, and random filters ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def varied(client):
    "An experiment with runs of every shape: missing keys, number-like text, case variants, NaN and inf, nesting."
    from mlflow.entities import Metric, Param, RunTag

    exp = new_experiment(client, "varied")
    ids = []
    for i in range(24):
        r = new_run(client, exp, run_name=["alpha", "Beta", "gamma-1", "delta_x"][i % 4] + str(i % 3),
                    start_time=1_700_000_000_000 + 1000 * (i % 7),
                    tags={"mlflow.parentRunId": ids[0]} if i in (5, 6) else None)
        metrics = [Metric("acc", [0.5, 0.75, math.nan, math.inf, -math.inf, 1.0, 0.0, -2.5][i % 8], 0, 0)] if i % 5 else []
        metrics += [Metric("loss", 1.0 / (i + 1), 0, 0)] if i % 3 else []
        params = [Param("m", ["tf", "torch", "TF", "jax", "t%f"][i % 5])] if i % 4 != 3 else []
        params += [Param("depth", ["3", "3.0", "03", "10", "2"][i % 5])] if i % 2 else []
        tags = [RunTag("team", ["vision", "Vision", "nlp", ""][i % 4])] if i % 6 else []
        client.log_batch(r, metrics=metrics, params=params, tags=tags)
        client.set_terminated(r, ["FINISHED", "FAILED", "KILLED"][i % 3])
        ids.append(r)
    client.delete_run(ids[7])
    return exp


def test_the_issues_examples(client, varied):
    from mlops_wb.tracking import filter_runs, load_runs

    frame = load_runs(varied, client=client)
    # a missing key never matches a comparison, in both syntaxes
    assert check(client, varied, "params.m != 'tf'", "params.m != 'tf'")
    assert "params.m" in frame and frame["params.m"].isna().any()
    # numeric-looking params stay text: '3' matches '3' only, on every experiment
    assert check(client, varied, "params.depth = '3'", "`params.depth` == '3'")
    assert set(filter_runs(frame, "`params.depth` == '3'")["params.depth"]) == {"3"}
    with pytest.raises(InvalidParameterError, match="compares params with a number"):
        filter_runs(frame, "params.depth >= 3")
    for text in ["metrics.x >>> 3", "params.m = 'tf' and"]:
        with pytest.raises(MlopsWbError):
            filter_runs(frame, text)


KEYS = {"metric": ["acc", "loss", "nothing"], "parameter": ["m", "depth", "nothing"], "tag": ["team", "nothing"],
        "attribute": ["run_name", "status", "start_time", "end_time", "run_id", "user_id"]}
COMPARATORS = ["=", "!=", ">", ">=", "<", "<=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL", "IN", "NOT IN", "==", ">>>"]
TEXTS = ["tf", "TF", "t%", "%f", "_f", "3", "3.0", "vision", "", "alpha%", "%1", "FINISHED", "x'y"]
NUMBERS = ["0", "0.75", "1", "-2.5", "1e400", "1700000003000", "abc"]
PREFIX = {"metric": ["metrics", "metric"], "parameter": ["params", "param"], "tag": ["tags", "tag"],
          "attribute": ["attributes", "attr", "run"]}


@st.composite
def clause(draw):
    kind = draw(st.sampled_from(list(KEYS)))
    key = draw(st.sampled_from(KEYS[kind]))
    op = draw(st.sampled_from(COMPARATORS))
    name = f"{draw(st.sampled_from(PREFIX[kind]))}.{draw(st.sampled_from([key, f'`{key}`']))}"
    if op in ("IS NULL", "IS NOT NULL"):
        return f"{name} {op}", (kind, key, op, None)
    if op in ("IN", "NOT IN"):
        values = draw(st.lists(st.sampled_from(TEXTS), min_size=1, max_size=3))
        return f"{name} {op} ({', '.join(repr(v) for v in values)})", (kind, key, op, values)
    if draw(st.booleans()) and kind in ("metric", "attribute"):
        value = draw(st.sampled_from(NUMBERS))
        return f"{name} {op} {value}", (kind, key, op, value)
    value = draw(st.sampled_from(TEXTS))
    return f"{name} {op} {value!r}", (kind, key, op, value)


PANDAS_OPS = {"=": "==", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
COLUMN = {"metric": "metrics.", "parameter": "params.", "tag": "tags."}


def pandas_of(parts) -> str | None:
    "The same filter as a pandas expression, where the pandas syntax can say it (no LIKE, no times)."
    out = []
    for kind, key, op, value in parts:
        if kind == "attribute":
            if key not in ("status", "run_id"):
                return None
            col = key
        else:
            col = f"`{COLUMN[kind]}{key}`"
        if op == "IS NULL":
            out.append(f"{col}.isna()")
        elif op == "IS NOT NULL":
            out.append(f"{col}.notna()")
        elif op in ("IN", "NOT IN"):
            out.append(f"{col} {op.lower()} {list(value)!r}")
        elif op in PANDAS_OPS:
            out.append(f"{col} {PANDAS_OPS[op]} {value if kind == 'metric' else repr(value)}")
        else:
            return None
    return " and ".join(out) or None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(parts=st.lists(clause(), min_size=1, max_size=3), joiner=st.sampled_from([" and ", " AND ", " or "]),
       dangling=st.booleans())
def test_random_filters_agree_with_mlflow_or_raise(client, varied, parts, joiner, dangling):
    "Random filters over a real store: the same runs as MLflow's search, or an MlopsWbError (never anything else)."
    from mlops_wb.tracking import filter_runs, load_runs

    text = joiner.join(p for p, _ in parts) + (" and" if dangling else "")
    try:
        expected = sorted(theirs(client, varied, text))
        mlflow_error = None
    except Exception as e:  # MLflow raises MlflowException, and sometimes ValueError, for a filter it refuses
        expected, mlflow_error = None, e
    frame = load_runs(varied, client=client)
    for name, call in [("filter_runs", lambda: filter_runs(frame, text, syntax="mlflow")),
                       ("load_runs", lambda: load_runs(varied, filter_string=text, client=client))]:
        try:
            got = sorted(call().run_id)
        except MlopsWbError:
            assert mlflow_error is not None or dangling, (name, text)  # refused only where MLflow refuses, or on purpose
            continue
        assert mlflow_error is None, (name, text, mlflow_error)
        assert got == expected, (name, text)
    pandas = pandas_of([p for _, p in parts]) if expected is not None and joiner != " or " and not dangling else None
    if pandas is not None:
        try:
            got = sorted(filter_runs(frame, pandas, syntax="pandas").run_id)
        except MlopsWbError:
            return
        assert got == expected, (text, pandas)
