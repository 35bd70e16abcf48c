"""The `mlops-wb` console script, run as a user runs it: a real process, a real MLflow store or server."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import BIN, clean_env

MLOPS_WB = str(BIN / "mlops-wb")


def run(*args, cwd, env=None, check=True):
    r = subprocess.run([MLOPS_WB, *args], cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, f"mlops-wb {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def test_help_and_version(tmp_path):
    r = run("--help", cwd=tmp_path)
    assert "init" in r.stdout and "info" in r.stdout
    import mlops_wb
    assert run("--version", cwd=tmp_path).stdout.strip() == f"mlops-wb {mlops_wb.__version__}"
    r = run("no-such-command", cwd=tmp_path, check=False)
    assert r.returncode == 2 and "No such command" in r.stderr


def test_info_in_empty_folder_uses_embedded_store_and_writes_only_there(tmp_path):
    r = run("info", cwd=tmp_path)
    db = tmp_path.resolve() / ".mlops_wb" / "mlflow.db"
    assert f"tracking URI: sqlite:///{db}" in r.stdout
    assert "from: embedded default" in r.stdout
    assert "settings file: none (built-in defaults)" in r.stdout
    assert [p.name for p in tmp_path.iterdir()] == [".mlops_wb"], "info wrote outside .mlops_wb/"
    assert sorted(p.name for p in (tmp_path / ".mlops_wb").iterdir()) == ["mlflow.db"]
    data = json.loads(run("info", "--json", cwd=tmp_path).stdout)
    assert data["tracking_uri_source"] == "embedded default"
    assert [e["name"] for e in data["experiments"]] == ["Default"]


def test_init_writes_commented_settings_and_refuses_to_overwrite(tmp_path):
    r = run("init", cwd=tmp_path)
    text = (tmp_path / "settings.ini").read_text()
    for section in ("[tracking]", "[registry]", "[drift]", "[gates]", "[approval]"):
        assert section in text
    assert "# Significance level" in text and "p_value_threshold = 0.05" in text
    r = run("init", cwd=tmp_path, check=False)
    assert r.returncode == 1
    assert "already exists, and init never overwrites a settings file" in r.stderr
    # with a settings file, info says so, and the embedded store sits beside it even when run from below
    (tmp_path / "sub").mkdir()
    r = run("info", cwd=tmp_path / "sub")
    assert f"settings file: {tmp_path.resolve() / 'settings.ini'}" in r.stdout
    assert f"sqlite:///{tmp_path.resolve()}/.mlops_wb/mlflow.db" in r.stdout


def test_bad_settings_value_is_reported_with_file_section_key(tmp_path):
    (tmp_path / "settings.ini").write_text("[drift]\ndrift_share = 2\n")
    r = run("info", cwd=tmp_path, check=False)
    assert r.returncode == 1
    assert (f"Error: In {tmp_path.resolve()}/settings.ini, section [drift], key 'drift_share': the value '2' is not "
            "valid. Expected a number in (0, 1].") in r.stderr
    assert "Traceback" not in r.stderr


def test_precedence_env_over_settings_file(tmp_path, tracking_uri):
    (tmp_path / "settings.ini").write_text("[tracking]\nuri = sqlite:///from_file.db\n")
    r = run("info", cwd=tmp_path)
    assert f"sqlite:///{tmp_path.resolve()}/from_file.db" in r.stdout and "from: settings.ini" in r.stdout
    r = run("info", cwd=tmp_path, env=clean_env(MLFLOW_TRACKING_URI=tracking_uri))
    assert f"tracking URI: {tracking_uri}" in r.stdout and "from: MLFLOW_TRACKING_URI" in r.stdout
    other = tracking_uri.replace("store/mlflow.db", "other.db")
    r = run("info", "--uri", other, cwd=tmp_path, env=clean_env(MLFLOW_TRACKING_URI=tracking_uri))
    assert f"tracking URI: {other}" in r.stdout and "from: argument" in r.stdout


def test_info_against_a_real_mlflow_server(mlflow_server, tmp_path):
    # the same library code creates an experiment on the server; info then lists it
    code = ("from mlops_wb.core import get_client, ensure_experiment; "
            f"c = get_client({mlflow_server!r}); print(ensure_experiment('team-exp', client=c))")
    subprocess.run([sys.executable, "-c", code], check=True, env=clean_env(), cwd=tmp_path, capture_output=True)
    r = run("info", "--json", cwd=tmp_path, env=clean_env(MLFLOW_TRACKING_URI=mlflow_server))
    data = json.loads(r.stdout)
    assert data["tracking_uri"] == mlflow_server and data["tracking_uri_source"] == "MLFLOW_TRACKING_URI"
    assert "team-exp" in [e["name"] for e in data["experiments"]]
    assert data["artifact_root"] is None
    assert list(tmp_path.iterdir()) == [], "talking to a server must not create a local store"


def test_unreachable_server_gives_clear_error(tmp_path):
    from conftest import free_port
    r = run("info", "--uri", f"http://127.0.0.1:{free_port()}", cwd=tmp_path,
            env=clean_env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="5"), check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("Error: Could not read the tracking store http://127.0.0.1:"), r.stderr
    assert "Check that the server is running" in r.stderr
