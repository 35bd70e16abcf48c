"""The pipeline runner as users run it: the `mlops-wb` command and papermill itself, real kernels, a real store."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time


from conftest import BIN, REPO, clean_env

PIPELINES = REPO / "nbs" / "pipelines"


def mlops_wb(*args, cwd, env=None, timeout=600):
    return subprocess.run([str(BIN / "mlops-wb"), *args], cwd=cwd, env=env or clean_env(), capture_output=True,
                          text=True, timeout=timeout)


def client_for(uri):
    from mlflow import MlflowClient
    return MlflowClient(tracking_uri=uri)


def test_killed_runner_leaves_no_run_running_forever(tmp_path, tracking_uri):
    from mlops_wb.pipelines import write_notebook
    write_notebook(tmp_path / "slow.ipynb", "seconds = 120", "import time\ntime.sleep(seconds)")
    write_notebook(tmp_path / "quick.ipynb", "x = 1", "from mlops_wb.pipelines import record\nrecord('x', x)")
    proc = subprocess.Popen([str(BIN / "mlops-wb"), "run", "slow.ipynb", "--uri", tracking_uri, "-e", "stale"],
                            cwd=tmp_path, env=clean_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = client_for(tracking_uri)
    deadline = time.time() + 120
    running = []
    while time.time() < deadline and not running:
        exp = client.get_experiment_by_name("stale")
        if exp:
            running = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'")
        time.sleep(0.5)
    assert running, "the runner never started its run"
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its kernel die without a word
    proc.wait()
    assert client.get_run(running[0].info.run_id).info.status == "RUNNING"
    r = mlops_wb("run", "quick.ipynb", "--uri", tracking_uri, "-e", "stale", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    dead = client.get_run(running[0].info.run_id)
    assert dead.info.status == "FAILED"
    assert "stopped without finishing" in dead.data.tags["mlops_wb.error"]


def test_failing_notebook_exits_nonzero_names_cell_and_keeps_notebook(tmp_path, tracking_uri):
    from mlops_wb.pipelines import write_notebook
    write_notebook(tmp_path / "bad.ipynb", "n = 0", "ratio = 1 / n")
    r = mlops_wb("run", "bad.ipynb", "--uri", tracking_uri, "-e", "bad", "--output", "out.ipynb", cwd=tmp_path)
    assert r.returncode == 1
    assert "failed in cell In [3] ('ratio = 1 / n'): ZeroDivisionError: division by zero" in r.stderr, r.stderr
    client = client_for(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("bad").experiment_id])
    assert run.info.status == "FAILED"
    assert "ZeroDivisionError" in run.data.tags["mlops_wb.error"]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "notebook")] == ["notebook/out.ipynb"]
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    assert any(o.get("ename") == "ZeroDivisionError" for c in executed["cells"] for o in c.get("outputs", []))


def test_pipeline_command_skips_unchanged_steps(tmp_path, tracking_uri):
    from mlops_wb.pipelines import write_notebook
    write_notebook(tmp_path / "a.ipynb", "n = 2", "from mlops_wb.pipelines import record\nrecord('double', n * 2)")
    write_notebook(tmp_path / "b.ipynb", "v = 0.0", "from mlops_wb.pipelines import record\nrecord('plus_one', v + 1)")
    (tmp_path / "p.yaml").write_text("name: two\nsteps:\n  a:\n    notebook: a.ipynb\n  b:\n    notebook: b.ipynb\n"
                                     "    needs: [a]\n    parameters: {v: '${a.double}'}\n")
    first = mlops_wb("pipeline", "p.yaml", "--uri", tracking_uri, "-e", "two", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = mlops_wb("pipeline", "p.yaml", "--uri", tracking_uri, "-e", "two", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "step a: skipped, notebook, parameters and inputs unchanged since run" in second.stdout + second.stderr
    assert second.stdout.count("SKIPPED") == 2
    client = client_for(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("two").experiment_id], filter_string="tags.mlops_wb.step = 'b'")
    assert sorted(r.data.metrics.get("plus_one", -1) for r in runs) == [-1, 5.0]  # the skipped child points at the first
