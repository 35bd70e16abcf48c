"""Hostile input to the data and drift commands, through the installed console script: one line `Error: ...` and exit
code 1 (or the right answer), never a traceback; and the same cases in the library give an `MlopsWbError`.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import BIN, clean_env

from mlops_wb.core import MlopsWbError
from mlops_wb.data import infer_schema
from mlops_wb.drift import DriftProfile, compute_drift


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "mlops-wb"), *args], cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=300)


def one_error(r: subprocess.CompletedProcess, *fragments: str) -> None:
    "Exit code 1 and exactly one line on stderr, `Error: ...`, holding each fragment; no traceback anywhere."
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture
def files(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    pd.DataFrame({"x": rng.normal(size=400), "city": rng.choice(["a", "b", "c"], 400)}).to_csv(tmp_path / "ref.csv",
                                                                                             index=False)
    pd.DataFrame({"x": rng.normal(size=300), "city": rng.choice(["a", "b", "c"], 300)}).to_csv(tmp_path / "cur.csv",
                                                                                             index=False)
    return tmp_path


# -- the cases of the issue ---------------------------------------------------------------------------------------
def test_schema_of_plus_minus_1e308_is_finite(files):
    "The span of +-1e308 overflows to inf: the bounds are clamped to the largest float, and the data passes them."
    pd.DataFrame({"x": [1e308, -1.7e308, 1.7e308], "y": [1, 2, 3]}).to_csv(files / "huge.csv", index=False)
    r = run("schema", "huge.csv", "-o", "huge.schema.json", cwd=files)
    assert r.returncode == 0, r.stderr
    col = json.loads((files / "huge.schema.json").read_text())["columns"][0]
    assert (col["min"], col["max"]) == (-1.7976931348623157e308, 1.7976931348623157e308)
    r = run("validate", "huge.csv", "--schema", "huge.schema.json", cwd=files)
    assert r.returncode == 0 and "passed" in r.stdout, r.stdout + r.stderr


def test_drift_profile_into_a_missing_folder(files):
    one_error(run("drift-profile", "ref.csv", "no/such/p.json", cwd=files), "does not exist", "mkdir -p")
    assert not (files / "no").exists()


def test_schema_onto_a_folder(files):
    (files / "out").mkdir()
    one_error(run("schema", "ref.csv", "-o", "out", cwd=files), "Cannot write the schema", "it is a folder")
    (files / "p.json").mkdir()
    one_error(run("drift-profile", "ref.csv", "p.json", cwd=files), "it is a folder")


@contextlib.contextmanager
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a filesystem with no space left: a 64 KiB tmpfs filled up (mounted as root), else /dev/full,
    a device on which every write fails with ENOSPC. Yields the path to write to."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    mounted = shutil.which("mount") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode == 0
    if not mounted:
        yield Path("/dev/full")
        return
    try:
        (mnt / "old.json").write_text('{"kept": true}')  # a previous file, which a failed write must not destroy
        with contextlib.suppress(OSError), open(mnt / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        yield mnt / "old.json"
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_schema_onto_a_full_disk(files):
    with full_disk(files) as target:
        one_error(run("schema", "digits", "-o", str(target), cwd=files), "Could not write the schema",
                  "No space left on device")
        if target != Path("/dev/full"):  # the old file is whole, and no temporary file is left behind
            assert json.loads(target.read_text()) == {"kept": True}
            assert sorted(p.name for p in target.parent.iterdir()) == ["filler", "old.json"]
    link = files / "full.json"  # the drift profile's OUTPUT must end in .json: /dev/full through a link
    link.symlink_to("/dev/full")
    one_error(run("drift-profile", "ref.csv", str(link), cwd=files), "Could not write the drift profile",
              "No space left on device")


def test_a_profile_without_columns(files):
    (files / "p.json").write_text('{"format": "mlops_wb.drift_profile", "version": 2, "n_rows": 3, "max_buckets": 64}')
    one_error(run("drift", "p.json", "cur.csv", cwd=files), "This drift profile is damaged (no 'columns' entry)")


def test_an_all_missing_reference_column_against_text(files):
    pd.DataFrame({"x": [None] * 5, "y": [1.0, 2, 3, 4, 5]}).to_csv(files / "empty_x.csv", index=False)
    pd.DataFrame({"x": list("abcde"), "y": [1.0, 2, 3, 4, 5]}).to_csv(files / "text_x.csv", index=False)
    one_error(run("drift", "empty_x.csv", "text_x.csv", cwd=files), "'x' is float in the reference but text",
              "no values at all reads as float")
    one_error(run("drift", "empty_x.csv", "text_x.csv", "--columns", "x", cwd=files), "cannot be compared")
    assert run("drift-profile", "empty_x.csv", "p.json", cwd=files).returncode == 0
    one_error(run("drift", "p.json", "text_x.csv", cwd=files), "'x' is float in the reference but text")


def test_names_a_profile_cannot_keep_in_the_library():
    "A MultiIndex or None column names: one clear error from DriftProfile.fit and compute_drift (no CLI can make them)."
    multi = pd.DataFrame([[1.0, 2.0]] * 3, columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")]))
    nameless = pd.DataFrame({None: [1.0, 2.0], "b": [1, 2]})
    for df, match in ((multi, "MultiIndex columns"), (nameless, "neither strings nor integers")):
        with pytest.raises(MlopsWbError, match=match):
            DriftProfile.fit(df)
        with pytest.raises(MlopsWbError, match=match):
            compute_drift(reference=df, current=df)


def test_a_header_only_reference(files):
    pd.DataFrame({"x": [], "city": []}).to_csv(files / "header.csv", index=False)
    one_error(run("drift-profile", "header.csv", "p.json", cwd=files), "DriftProfile.fit", "0 rows")
    one_error(run("drift", "header.csv", "cur.csv", cwd=files), "compute_drift", "0 rows")
    with pytest.raises(MlopsWbError, match="0 rows"):
        DriftProfile.fit(pd.read_csv(files / "header.csv"))


def test_missing_columns_make_the_set_drift(files):
    "Two columns, one missing from the batch: 1 of 2 drifted, the default share, so --fail-on-drift exits 3."
    pd.read_csv(files / "cur.csv")[["x"]].to_csv(files / "only_x.csv", index=False)
    r = run("drift", "ref.csv", "only_x.csv", "--fail-on-drift", cwd=files)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "Dataset drift detected: 1 of 2 columns drifted (50%" in r.stdout and "1 of them missing" in r.stdout
    table = r.stdout.splitlines()
    header = next(i for i, line in enumerate(table) if line.startswith("column"))
    assert table[header + 1].split()[:3] == ["city", "categorical", "missing"]  # listed first
    r = run("drift", "ref.csv", "only_x.csv", "--fail-on-drift", "--drift-share", "0.6", cwd=files)
    assert r.returncode == 0, r.stdout  # 50% is below the share asked for
    r = run("drift-profile", "ref.csv", "ref.json", cwd=files)
    assert r.returncode == 0, r.stderr
    r = run("drift", "ref.json", "only_x.csv", "--json", "--fail-on-drift", cwd=files)
    report = json.loads(r.stdout)
    assert r.returncode == 3 and [c["test"] for c in report["columns"]] == ["ks", "missing"]


def test_uint64_above_2_63_through_a_saved_profile(files):
    values = np.array([2**63 + 7, 2**64 - 1, 2**63 + 7, 2**64 - 2] * 30, dtype="uint64")
    pd.DataFrame({"u": values}).to_parquet(files / "u.parquet")
    assert run("drift-profile", "u.parquet", "u.json", cwd=files).returncode == 0
    r = run("drift", "u.json", "u.parquet", "--fail-on-drift", cwd=files)
    assert r.returncode == 0 and "No dataset drift: 0 of 1 columns drifted" in r.stdout, r.stdout + r.stderr


# -- further hostile inputs of the same families ------------------------------------------------------------------------
@pytest.mark.parametrize("content, fragment", [
    ("[1, 2]", "This is not a drift profile"),
    ('{"format": "mlops_wb.drift_profile", "version": 7, "columns": []}', "has version 7"),
    ('{"format": "mlops_wb.drift_profile", "n_rows": 3, "max_buckets": 64, "columns": [{"name": "x", "family": '
     '"float", "numeric": {"n": 2, "missing": 0, "mean": 0, "m2": 0, "min": 0, "max": 0, "scale": null, '
     '"max_buckets": 64, "keys": [0.0], "counts": [-2]}}]}', "the counts do not add up"),
    ('{"format": "mlops_wb.drift_profile", "n_rows": "many", "max_buckets": 64, "columns": [{"name": "x", '
     '"family": "text", "categories": {"values": ["a"], "counts": [1], "missing": 0}}]}', "damaged"),
    ("{not json", "the text is not JSON"),
])
def test_damaged_profiles(files, content, fragment):
    (files / "p.json").write_text(content)
    one_error(run("drift", "p.json", "cur.csv", cwd=files), fragment)


def test_a_profile_that_is_not_text(files):
    (files / "p.json").write_bytes(b"\xff\xfe\x00garbage")
    one_error(run("drift", "p.json", "cur.csv", cwd=files), "Cannot read the drift profile")


@pytest.mark.parametrize("name, content", [("empty.csv", b""), ("bad.parquet", b"PAR1 not parquet"),
                                           ("nul.csv", b"a,b\n1,\x00\x00\n"), ("latin.csv", b"a\n\xe9t\xe9\n")])
def test_unreadable_data_files(files, name, content):
    (files / name).write_bytes(content)
    r = run("drift", "ref.csv", name, cwd=files)
    if r.returncode != 1:  # pandas reads it (NUL bytes, Latin-1 as replacement): then the report is what it is
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    else:
        one_error(r)


def test_a_folder_as_data_and_wrong_options(files):
    (files / "dir.csv").mkdir()
    one_error(run("drift", "ref.csv", "dir.csv", cwd=files), "It is a folder")
    one_error(run("drift", "ref.csv", "cur.csv", "--method", "ks", "--columns", "x", "--threshold", "2", cwd=files),
              "(0, 1]")
    one_error(run("drift", "ref.csv", "cur.csv", "--threshold", "-1", cwd=files), "threshold")
    one_error(run("drift", "ref.csv", "cur.csv", "--drift-share", "0", cwd=files), "drift_share")
    one_error(run("drift", "ref.csv", "cur.csv", "--method", "z", cwd=files), "z-test")
    one_error(run("schema", "ref.csv", "--tolerance", "nan", cwd=files), "tolerance")
    one_error(run("drift-profile", "ref.csv", "p.json", "--max-buckets", "8", cwd=files), "[32, 1000000]")


def test_a_tab_separated_file_read_as_csv(files):
    "A wrong separator gives one column named 'x\\tcity': nothing in common with the reference, which says so."
    pd.read_csv(files / "cur.csv").to_csv(files / "cur_tabs.csv", sep="\t", index=False)
    one_error(run("drift", "ref.csv", "cur_tabs.csv", cwd=files), "no columns in common")


def test_only_unsupported_columns(files):
    pd.DataFrame({"t": pd.date_range("2024-01-01", periods=5)}).to_parquet(files / "dates.parquet")
    one_error(run("drift-profile", "dates.parquet", "p.json", cwd=files), "can be profiled", "not compared")
    one_error(run("drift", "dates.parquet", "dates.parquet", cwd=files), "can be compared")


def test_infinite_values_are_counted_not_fatal(files):
    cur = pd.read_csv(files / "cur.csv")
    cur.loc[:9, "x"] = np.inf
    cur.to_csv(files / "inf.csv", index=False)
    r = run("drift", "ref.csv", "inf.csv", cwd=files)
    assert r.returncode == 0 and "infinite values left out as missing: 10 in the current data" in r.stdout


def test_a_damaged_schema_file(files):
    schema = infer_schema(pd.read_csv(files / "ref.csv")).to_dict()
    schema["version"] = "one"
    (files / "s.json").write_text(json.dumps(schema))
    one_error(run("validate", "cur.csv", "--schema", "s.json", cwd=files), "has schema version 'one'")
    schema["version"] = 1
    schema["columns"][0]["nullable"] = {"no": 1}
    schema["min_rows"] = "ten"
    (files / "s.json").write_text(json.dumps(schema))
    one_error(run("validate", "cur.csv", "--schema", "s.json", cwd=files), "min_rows")
    (files / "s.yaml").write_text("format: mlops_wb.schema\ncolumns:\n  - {1: 2}\n")
    one_error(run("validate", "cur.csv", "--schema", "s.yaml", cwd=files), "column #1 is not valid")
