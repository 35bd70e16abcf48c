"""mlops_wb.data: fingerprints across processes, schema files, validation properties, lineage in a real MLflow store."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import BIN, clean_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import pandas as hpd

from mlops_wb.core import DataValidationError, InvalidParameterError
from mlops_wb.data import (
    fingerprint,
    infer_schema,
    lineage,
    load_dataset,
    load_schema,
    log_dataset,
    runs_for_dataset,
    validate,
)

GOLDEN_CODE = """
import numpy as np, pandas as pd
def golden():
    return pd.DataFrame({
        "f": [1.5, -0.0, np.nan, 1e300], "i": [1, -2, 3, 2**62],
        "u": np.array([1, 2, 3, 2**64 - 1], dtype="uint64"),
        "n": pd.array([1, None, 3, 4], dtype="Int64"), "b": [True, False, True, False],
        "s": ["a", None, "\u00fcn\u00ef", ""], "c": pd.Categorical(["x", "y", "x", None]),
        "t": pd.to_datetime(["2024-01-01", None, "1970-01-01 00:00:00.000001", "2262-01-01"], format="ISO8601"),
        "z": pd.to_datetime(["2024-01-01 12:00"] * 4).tz_localize("Europe/Oslo"),
        "d": pd.to_timedelta([1, 2, None, 4], unit="s")})
"""
# The fingerprint of golden() under format v1. It must never change: fingerprints are stored in MLflow as dataset
# digests, and a changed encoding would make the same data look new. Bump FINGERPRINT_VERSION instead.
GOLDEN_FINGERPRINT = "c1bd00eafc7b4c0a491e41116d2d7f28"


def golden() -> pd.DataFrame:
    scope: dict = {}
    exec(GOLDEN_CODE, scope)
    return scope["golden"]()


def test_fingerprint_is_stable_across_processes_and_pinned():
    here = fingerprint(golden())
    code = GOLDEN_CODE + "\nfrom mlops_wb.data import fingerprint\nprint(fingerprint(golden()))"
    seen = set()
    for seed in ("1", "2"):  # two separate interpreters with different string-hash seeds
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env=clean_env(PYTHONHASHSEED=seed))
        seen.add(out.stdout.strip())
    assert seen == {here}
    assert here == GOLDEN_FINGERPRINT, f"the fingerprint encoding changed: {here}"


def test_fingerprint_sensitivity():
    df = golden()
    fp = fingerprint(df)
    for col in ("f", "i", "s", "t", "d"):
        changed = df.copy()
        changed.loc[0, col] = changed.loc[1, col] if pd.notna(changed.loc[1, col]) else changed.loc[3, col]
        assert fingerprint(changed) != fp, col
    assert fingerprint(df[list(df.columns[::-1])]) != fp
    assert fingerprint(df.astype({"c": "str", "s": object})) == fp  # text is text, whatever its dtype


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hpd.data_frames([hpd.column("a", dtype=int), hpd.column("b", dtype=float),
                        hpd.column("c", elements=st.text(max_size=5))], index=hpd.range_indexes(min_size=1, max_size=30)),
       st.data())
def test_one_changed_cell_changes_the_fingerprint(df, data):
    row = data.draw(st.integers(0, len(df) - 1))
    col = data.draw(st.sampled_from(["a", "b", "c"]))
    changed = df.copy()
    old = changed.loc[row, col]
    if col == "a":
        new = old + 1 if old < 2**62 else old - 1
    elif col == "b":
        new = 1.0 if pd.isna(old) or old == 0 else (np.nan if np.isfinite(old) else 0.0)
    else:
        new = old + "x"
    changed.loc[row, col] = new
    assert fingerprint(changed) != fingerprint(df)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hpd.data_frames([hpd.column("n", dtype=int), hpd.column("x", dtype=float),
                        hpd.column("t", elements=st.sampled_from(["a", "b", "c", None]))],
                       index=hpd.range_indexes(min_size=1, max_size=40)))
def test_a_frame_passes_its_own_schema(df):
    schema = infer_schema(df)
    report = validate(df, schema)
    assert report.ok, report
    assert validate(df, load_schema_roundtrip(schema)).to_dict()["findings"] == report.to_dict()["findings"]


def load_schema_roundtrip(schema):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return load_schema(schema.save(os.path.join(d, "s.yaml")))


def test_schema_file_round_trip(tmp_path):
    df = load_dataset("wine")
    schema = infer_schema(df, row_tolerance=0.2, severities={"unseen_category": "error"})
    for name in ("schema.json", "schema.yml"):
        back = load_schema(schema.save(tmp_path / name))
        assert back == schema
    text = (tmp_path / "schema.json").read_text()
    assert json.loads(text)["format"] == "mlops_wb.schema" and '"name": "proline"' in text
    bad = df.assign(target=df["target"].replace(2, 5))
    a = validate(bad, schema).to_dict()
    b = validate(bad, tmp_path / "schema.yml").to_dict()
    assert a == b and sorted(f["check"] for f in a["findings"]) == ["range", "unseen_category"]
    assert {f["severity"] for f in a["findings"]} == {"error"}  # the schema's own severity for unseen categories
    with pytest.raises(DataValidationError, match="unseen_category"):
        validate(bad, tmp_path / "schema.json", raise_on_error=True)


def test_bad_input_is_reported_clearly():
    schema = infer_schema(load_dataset("iris"))
    with pytest.raises(InvalidParameterError, match="must be a pandas DataFrame"):
        validate(load_dataset("iris").to_numpy(), schema)
    with pytest.raises(InvalidParameterError, match="at least one row"):
        validate(load_dataset("iris").head(0), schema)
    with pytest.raises(InvalidParameterError, match="schema of another data set"):
        validate(load_dataset("wine"), schema)
    with pytest.raises(LookupError, match="Bundled data sets: breast_cancer, diabetes, wine, iris, digits"):
        load_dataset("mnist")


def test_lineage_is_recorded_in_mlflow(tracking_uri):
    from mlflow import MlflowClient

    from mlops_wb.core import ensure_experiment, get_client

    client = get_client(tracking_uri)
    exp = ensure_experiment("lineage", client=client)
    run_id = client.create_run(exp, run_name="train").info.run_id
    df = load_dataset("diabetes")
    train, holdout = df.iloc[:300], df.iloc[300:]
    log_dataset(train, name="diabetes", role="training", run_id=run_id, client=client)
    log_dataset(holdout, name="diabetes-holdout", role="evaluation", run_id=run_id, client=client)
    client.set_terminated(run_id)

    run = MlflowClient(tracking_uri=tracking_uri).get_run(run_id)  # MLflow's own view, a fresh client
    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"diabetes", "diabetes-holdout"}
    assert inputs["diabetes"].dataset.digest == fingerprint(train)
    assert {t.key: t.value for t in inputs["diabetes-holdout"].tags}["mlflow.data.context"] == "evaluation"
    assert json.loads(inputs["diabetes"].dataset.profile)["num_rows"] == 300
    found = MlflowClient(tracking_uri=tracking_uri).search_runs([exp], filter_string=(
        f"dataset.digest = '{fingerprint(holdout)}'"))
    assert [r.info.run_id for r in found] == [run_id]

    table = lineage(run_id, client)
    assert table[["name", "role", "rows", "source"]].values.tolist() == [
        ["diabetes", "training", 300, "sklearn:diabetes"], ["diabetes-holdout", "evaluation", 142, "sklearn:diabetes"]]
    assert runs_for_dataset(train, client=client)["run_id"].tolist() == [run_id]
    schema_file = client.download_artifacts(run_id, table["schema_artifact"][0])
    assert load_schema(schema_file).reference["fingerprint"] == fingerprint(train)


def test_lineage_against_a_real_server(mlflow_server):
    from mlops_wb.core import ensure_experiment, get_client

    client = get_client(mlflow_server)
    run_id = client.create_run(ensure_experiment("lineage-server", client=client)).info.run_id
    df = load_dataset("iris")
    log_dataset(df, name="iris", role="production", run_id=run_id, client=client)
    report = validate(df.assign(extra=1), infer_schema(df), name="iris")
    report.log_to_mlflow(run_id, client)
    table = lineage(run_id, client)
    assert table[["name", "role", "fingerprint"]].values.tolist() == [["iris", "production", fingerprint(df)]]
    run = client.get_run(run_id)
    assert run.data.metrics["data_validation.iris.warnings"] == 1.0
    assert run.data.tags["data_validation.iris.status"] == "passed"


def test_cli_commands(tmp_path, tracking_uri):
    from typer.testing import CliRunner

    import mlops_wb.cli.data  # noqa: F401  (adds the data commands to the app)
    from mlops_wb.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["schema", "breast_cancer", "-o", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    df = load_dataset("breast_cancer")
    df.iloc[:5].to_parquet(tmp_path / "ok.parquet")
    df.assign(**{"mean radius": -1.0}).to_csv(tmp_path / "bad.csv", index=False)
    r = runner.invoke(app, ["validate", str(tmp_path / "ok.parquet"), "--schema", str(tmp_path / "s.json")])
    assert r.exit_code == 0 and "passed" in r.output, r.output
    r = runner.invoke(app, ["validate", str(tmp_path / "bad.csv"), "--schema", str(tmp_path / "s.json"), "--json"])
    assert r.exit_code == 1
    assert [f["check"] for f in json.loads(r.stdout)["findings"]] == ["range"]
    # the installed console script loads the data commands by itself
    out = subprocess.run([str(BIN / "mlops-wb"), "fingerprint", "breast_cancer"], capture_output=True, text=True,
                         env=clean_env(), cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == fingerprint(df)
