"""A store that cannot be used is reported in one line, at once: an unreachable server, a damaged or empty SQLite
file, a folder that cannot be created. Through the library and through the installed console script."""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, clean_env
from mlops_wb.core import TrackingError


def cli(*args: str, cwd: Path, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    out = subprocess.run([str(BIN / "mlops-wb"), *args], cwd=cwd, env=clean_env(**env), capture_output=True,
                         text=True, timeout=600)
    return out, time.monotonic() - t0


def one_line_error(out: subprocess.CompletedProcess, contains: str) -> None:
    assert out.returncode == 1, (out.stdout, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and contains in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_an_unreachable_server_answers_in_seconds(tmp_path):
    "Nothing listens on port 9: an error at once instead of MLflow's retries (261 s before)."
    from mlflow import MlflowClient

    from mlops_wb.core import get_client
    from mlops_wb.tracking import load_runs

    t0 = time.monotonic()
    with pytest.raises(TrackingError, match=r"could not be reached .*Connection refused.* \(now 10 s\)"):
        get_client("http://127.0.0.1:9")
    assert time.monotonic() - t0 < 10
    # a client made by hand skips that check: MLflow's own retries are bounded (3, back-off 1: about 7 s)
    t0 = time.monotonic()
    with pytest.raises(TrackingError, match="Could not reach the MLflow tracking server") as e:
        load_runs("x", client=MlflowClient("http://127.0.0.1:9"))
    assert time.monotonic() - t0 < 60 and "\n" not in str(e.value)
    out, seconds = cli("runs", "--uri", "http://127.0.0.1:9", cwd=tmp_path)
    one_line_error(out, "could not be reached")
    assert seconds < 60  # the interpreter's start included; without the check it took 261 s


def test_the_wait_for_a_silent_server_is_configurable(tmp_path):
    "A server that accepts the connection but never answers: the error comes after [tracking] timeout seconds."
    from mlops_wb.core import get_client, load_settings

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepted by the kernel, never answered
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        (tmp_path / "settings.ini").write_text("[tracking]\ntimeout = 2\n")
        settings = load_settings(start=tmp_path)
        assert settings.tracking.timeout == 2.0
        t0 = time.monotonic()
        with pytest.raises(TrackingError, match="did not answer within 2 s"):
            get_client(url, settings=settings)
        assert 1.5 < time.monotonic() - t0 < 30
        out, _ = cli("runs", "--uri", url, cwd=tmp_path)
        one_line_error(out, "did not answer within 2 s")
    (tmp_path / "settings.ini").write_text("[tracking]\ntimeout = -1\n")
    out, _ = cli("runs", "--uri", url, cwd=tmp_path)
    one_line_error(out, "key 'timeout'")


def test_an_empty_store_file_is_not_rebuilt(tmp_path):
    "A 0-byte mlflow.db (the embedded default) is refused and left as it is, not silently made a new store."
    (tmp_path / "settings.ini").write_text("[tracking]\nexperiment = x\n")
    db = tmp_path / ".mlops_wb" / "mlflow.db"
    db.parent.mkdir()
    db.touch()
    out, _ = cli("runs", cwd=tmp_path)
    one_line_error(out, "is empty (0 bytes)")
    assert db.stat().st_size == 0
    db.write_bytes(b"\x00" * 4096)
    out, _ = cli("runs", cwd=tmp_path)
    one_line_error(out, "is not an SQLite database")


def test_a_folder_that_cannot_be_created(tmp_path):
    "[tracking] uri = sqlite:////proc/nope/x.db: one line naming the folder and where the URI came from."
    (tmp_path / "settings.ini").write_text("[tracking]\nuri = sqlite:////proc/nope/x.db\n")
    out, _ = cli("runs", cwd=tmp_path)
    one_line_error(out, "Cannot create the folder /proc/nope for the tracking store sqlite:////proc/nope/x.db")
    assert "settings.ini" in out.stderr
