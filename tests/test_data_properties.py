"""Every public data function that takes frames or files, on generated input of every dtype: the reference
implementation's answer (pandas), or an `MlopsWbError`, and never anything else (no raw numpy or pandas exception).
"""
from __future__ import annotations

import copy
import math
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_drift_properties import frames

from mlops_wb.core import MlopsWbError
from mlops_wb.data import fingerprint, infer_schema, load_dataset, load_schema, validate

EXAMPLES = int(os.environ.get("MLOPS_WB_TEST_EXAMPLES", "100"))  # a developer's deeper search: more
PROPS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def attempt(func, *args, **kwargs):
    "The result of func, or the MlopsWbError it raised (any other exception fails the test)."
    try:
        return func(*args, **kwargs)
    except MlopsWbError as e:
        assert str(e) and "Traceback" not in str(e)
        return e


def kind_of(s: pd.Series) -> str:
    "The reference implementation of a schema kind: pandas' own dtype predicates."
    if isinstance(s.dtype, (pd.CategoricalDtype, pd.StringDtype)):
        return "text"
    for kind, test in (("bool", pd.api.types.is_bool_dtype), ("int", pd.api.types.is_integer_dtype),
                       ("float", pd.api.types.is_float_dtype), ("datetime", pd.api.types.is_datetime64_any_dtype),
                       ("timedelta", pd.api.types.is_timedelta64_dtype)):
        if test(s.dtype):
            return kind
    return "text"


# -- infer_schema: what pandas says about each column, or a clear error ------------------------------------------------
@PROPS
@given(frames(min_rows=0), st.floats(0, 10) | st.sampled_from([0.0, 0.1, 10.0]))
def test_infer_schema_equals_pandas_or_refuses(df, tolerance):
    schema = attempt(infer_schema, df, tolerance=tolerance)
    if isinstance(schema, MlopsWbError):
        assert len(df) == 0  # the only refusal here: a frame without rows
        return
    assert schema.names == [str(c) for c in df.columns] and schema.reference["rows"] == len(df)
    for col in schema.columns:
        s = df[col.name]
        nulls = int(s.isna().sum())
        assert (col.kind, col.nullable) == (kind_of(s), nulls > 0)
        if nulls:
            assert col.max_null_rate == round(min(1.0, nulls / len(s) + tolerance), 6)
        values = s.dropna()
        if col.kind == "int" and len(values):
            assert col.min <= int(values.min()) and int(values.max()) <= col.max  # exact, uint64 included
            assert isinstance(col.min, int) and isinstance(col.max, int)
        if col.kind == "float":
            v = values.to_numpy(np.float64)
            finite = v[np.isfinite(v)]
            assert col.allow_inf == bool(np.isinf(v).any())
            if len(finite):
                assert col.min <= finite.min() and finite.max() <= col.max
                assert math.isfinite(col.min) and math.isfinite(col.max)
            else:
                assert col.min is None and col.max is None
        if col.kind == "text" and col.categories is not None:
            assert col.categories == sorted(values.astype(str).unique().tolist())
    with tempfile.TemporaryDirectory() as tmp:  # the file round-trips, in both formats
        for name in ("s.json", "s.yaml"):
            assert load_schema(schema.save(Path(tmp) / name)) == schema


# -- validate: a frame passes its own schema; findings count what pandas counts ---------------------------------------
@PROPS
@given(frames(min_rows=1), frames(min_rows=0), st.data())
def test_validate_counts_what_pandas_counts(df, other, data):
    schema = infer_schema(df)
    report = validate(df, schema)
    assert report.ok, report  # a frame always passes its own schema
    batch = pd.concat([other, df.iloc[:0]], axis=1) if data.draw(st.booleans()) else other
    batch = batch.loc[:, ~batch.columns.duplicated()]
    report = attempt(validate, batch, schema)
    if isinstance(report, MlopsWbError):
        assert len(batch) == 0 or not set(map(str, batch.columns)) & set(schema.names) or batch.shape[1] == 0
        return
    found = {(f.column, f.check): f for f in report.findings}
    for name in schema.names:
        if name not in batch.columns:
            assert (name, "missing_column") in found
    for name in map(str, batch.columns):
        if name not in schema.names:
            assert (name, "extra_column") in found
    for col in schema.columns:
        if col.name not in batch.columns:
            continue
        s = batch[col.name]
        nulls = int(s.isna().sum())
        if nulls and not col.nullable:
            assert found[(col.name, "nulls")].count == nulls
        if kind_of(s) in ("int", "float") and col.kind in ("int", "float") and col.min is not None:
            v = s.to_numpy(np.float64, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                outside = int((np.isfinite(v) & ((v < col.min) | (v > col.max))).sum())
            assert (found[(col.name, "range")].count if outside else 0) == outside
            assert ((col.name, "range") in found) == bool(outside)
        if col.categories is not None:
            present = s.dropna()
            text = present.astype(str) if kind_of(s) != "float" else present.map(  # 1.0 matches category '1'
                lambda x: str(int(x)) if np.isfinite(x) and x == int(x) and abs(x) < 2**63 else str(x))
            unseen = int((~text.isin({str(c) for c in col.categories})).sum())
            assert (found[(col.name, "unseen_category")].count if unseen else 0) == unseen


# -- fingerprint: the same data gives the same hash, never an unexpected error ----------------------------------------
@PROPS
@given(frames(min_rows=0), st.sampled_from(["plain", "lists", "multiindex", "none_names", "duplicates"]))
def test_fingerprint_is_a_function_of_the_content(df, shape):
    if shape == "lists" and len(df):
        df = df.assign(l=[[i, "x"] for i in range(len(df))], d=[{"k": i} for i in range(len(df))])
    elif shape == "multiindex":
        df.columns = pd.MultiIndex.from_tuples([(c, i) for i, c in enumerate(df.columns)])
    elif shape == "none_names":
        df.columns = [None] + list(df.columns[1:])
    elif shape == "duplicates":
        df = pd.concat([df, df], axis=1)
    got = attempt(fingerprint, df)
    assert isinstance(got, str) and len(got) == 32  # every frame has a fingerprint
    assert fingerprint(copy.deepcopy(df)) == got == fingerprint(pickle.loads(pickle.dumps(df)))
    text = [c for c in df.columns if isinstance(df[c], pd.Series) and pd.api.types.is_string_dtype(df[c].dtype)
            and not isinstance(df[c].dtype, pd.CategoricalDtype)]
    if text and shape == "plain":  # text is text, whatever its dtype
        assert fingerprint(df.astype({c: object for c in text})) == got


# -- load_dataset: what pandas reads from the file, or a clear error ---------------------------------------------------
def pandas_read(path: Path) -> pd.DataFrame | None:
    "The reference implementation: pandas' reader for the suffix, or None when pandas cannot read the file."
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if ".parquet" in suffixes:
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if suffixes[0] == ".tsv" else ",")
    except Exception:  # noqa: BLE001 - the reference may fail in any way; load_dataset must then raise its own error
        return None


@PROPS
@given(frames(min_rows=0, max_rows=20), st.sampled_from(["csv", "tsv", "csv.gz", "parquet"]))
def test_load_dataset_reads_what_pandas_reads(df, fmt):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data.{fmt}"
        try:
            if fmt == "parquet":
                df.to_parquet(path)
            else:
                df.to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",")
        except Exception:  # noqa: BLE001 - pandas cannot write every frame (mixed objects to Parquet): nothing to read
            return
        want = pandas_read(path)
        got = attempt(load_dataset, path)
        if want is None:
            assert isinstance(got, MlopsWbError)
        else:
            pd.testing.assert_frame_equal(got, want)


@PROPS
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode), st.sampled_from(["csv", "tsv", "parquet",
                                                                                          "csv.gz", "txt"]))
def test_load_dataset_on_any_bytes(content, fmt):
    "Arbitrary bytes under a data suffix: pandas' frame when pandas reads them, else one clear error."
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data.{fmt}"
        path.write_bytes(content)
        got = attempt(load_dataset, path)
        want = pandas_read(path)
        if want is None:
            assert isinstance(got, MlopsWbError), got
        else:
            pd.testing.assert_frame_equal(got, want)


def test_load_dataset_on_a_folder_and_an_unreadable_file(tmp_path):
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(MlopsWbError, match="It is a folder"):
        load_dataset(tmp_path / "dir.csv")
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    secret.chmod(0)
    try:
        if os.access(secret, os.R_OK):  # root reads anything: nothing to test
            return
        with pytest.raises(MlopsWbError, match="Reading it failed"):
            load_dataset(secret)
    finally:
        secret.chmod(0o600)


@pytest.mark.parametrize("series", [pd.Series([1e308, -1e308, 0.0]), pd.Series([1.7e308, -1.7e308]),
                                    pd.Series(np.array([2**64 - 1, 2**63], dtype="uint64"))])
def test_schema_of_extreme_values_is_finite_and_passes_its_own_data(series):
    df = pd.DataFrame({"x": series})
    schema = infer_schema(df)
    col = schema.column("x")
    assert math.isfinite(col.min) and math.isfinite(col.max)
    assert validate(df, load_schema_roundtrip(schema)).ok


def load_schema_roundtrip(schema):
    with tempfile.TemporaryDirectory() as tmp:
        return load_schema(schema.save(Path(tmp) / "s.json"))
