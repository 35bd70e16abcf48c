"""The pipeline runner as users run it: the `mlops-wb` command and papermill itself, real kernels, a real store."""
from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import signal
import subprocess
import time

import nbformat

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
    assert "failed in cell In [2] ('ratio = 1 / n'): ZeroDivisionError: division by zero" in r.stderr, r.stderr
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


def error_line(r, code=1):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "TCP without encryption" not in ln]
    assert r.returncode == code and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    return lines[0]


def test_only_passed_parameters_are_injected_and_literals_keep_their_type(tmp_path, tracking_uri):
    from mlops_wb.pipelines import write_notebook
    write_notebook(tmp_path / "types.ipynb", "n = 1\nt = (1, 2)\ns = {3}\nb = b'ab'\nf = 0.5",
                   "from mlops_wb.pipelines import record\n"
                   "record('types', ' '.join(type(v).__name__ for v in (n, t, s, b, f)))")
    r = mlops_wb("run", "types.ipynb", "-p", "n", "7", "--uri", tracking_uri, "-e", "types", "--output", "out.ipynb",
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    client = client_for(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("types").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["types"] == "int tuple set bytes float"  # what the kernel saw
    assert {k: run.data.params[k] for k in "ntsbf"} == {"n": "7", "t": "(1, 2)", "s": "{3}", "b": "b'ab'", "f": "0.5"}
    assert run.data.tags["mlops_wb.injected"] == "n"
    executed = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4)
    injected = [c.source for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected == ["# Parameters\nn = 7\n"]


def test_missing_kernel_is_one_line_and_a_failed_run_with_its_notebook(tmp_path, tracking_uri):
    from mlops_wb.pipelines import write_notebook
    write_notebook(tmp_path / "r.ipynb", "x <- 1", "print(x)", kernel="r", language="R")
    r = mlops_wb("run", "r.ipynb", "--uri", tracking_uri, "-e", "kernels", "--output", "r-out.ipynb", cwd=tmp_path)
    line = error_line(r)
    assert "The notebook r.ipynb runs on the kernel 'r', which is not installed here (installed: " in line, line
    assert "mlops-wb run -k NAME" in line and "is marked FAILED" in line
    client = client_for(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("kernels").experiment_id])
    assert run.info.status == "FAILED" and run.data.tags["mlops_wb.error_name"] == "NoSuchKernel"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "notebook")] == ["notebook/r-out.ipynb"]
    # -k runs it on another kernel, as papermill's -k does
    write_notebook(tmp_path / "py.ipynb", "x = 1", "print(x)", kernel="no-such-kernel")
    r = mlops_wb("run", "py.ipynb", "-k", "python3", "--uri", tracking_uri, "-e", "kernels", cwd=tmp_path)
    assert r.returncode == 0 and "py: FINISHED" in r.stdout, r.stderr


def test_syntax_error_in_the_parameters_cell_is_a_failed_run_with_its_notebook(tmp_path, tracking_uri):
    from mlops_wb.pipelines import write_notebook
    write_notebook(tmp_path / "syntax.ipynb", "x = (1,\ny = 2", "print(x)")
    r = mlops_wb("run", "syntax.ipynb", "-p", "y", "3", "--uri", tracking_uri, "-e", "syntax", "--output", "s.ipynb",
                 cwd=tmp_path)
    assert "The notebook syntax.ipynb failed in cell In [1] ('x = (1,'): SyntaxError" in error_line(r)
    client = client_for(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("syntax").experiment_id])
    assert (run.info.status, run.data.tags["mlops_wb.failed_cell"], run.data.tags["mlops_wb.failed_cell_index"]) == \
        ("FAILED", "1", "0")
    assert [a.path for a in client.list_artifacts(run.info.run_id, "notebook")] == ["notebook/s.ipynb"]
    assert (tmp_path / "s.ipynb").exists()


def test_what_the_kernel_process_prints_is_kept_with_the_run_not_on_the_terminal(tmp_path, tracking_uri):
    """ipykernel logs to its process's stderr outside any cell (a shutdown race printed
    "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel." under a failed run's one error line)."""
    from mlops_wb.pipelines import write_notebook
    write_notebook(tmp_path / "noisy.ipynb", "x = 1",
                   "from ipykernel.kernelapp import IPKernelApp\nIPKernelApp.instance().log.error('kernel says %s', x)",
                   "1 / 0")
    r = mlops_wb("run", "noisy.ipynb", "-p", "x", "2", "--uri", tracking_uri, "-e", "noisy", cwd=tmp_path)
    assert "The notebook noisy.ipynb failed in cell In [4] ('1 / 0'): ZeroDivisionError" in error_line(r)
    assert r.stdout.count("kernel says") == 0
    client = client_for(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("noisy").experiment_id])
    log = client.download_artifacts(run.info.run_id, "mlops_wb/kernel.log", str(tmp_path))
    assert "[IPKernelApp] ERROR | kernel says 2" in open(log, encoding="utf-8").read()


def test_runs_are_recorded_with_the_user_who_ran_them(tmp_path, tracking_uri, mlflow_server):
    from mlops_wb.pipelines import write_notebook
    write_notebook(tmp_path / "who.ipynb", "x = 1", "print(x)")
    assert mlops_wb("run", "who.ipynb", "--uri", tracking_uri, "-e", "who", cwd=tmp_path).returncode == 0
    client = client_for(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("who").experiment_id])
    assert run.info.user_id == getpass.getuser() != "unknown"
    # against a server, the user MLflow authenticates (MLFLOW_TRACKING_USERNAME), not a name mlops_wb makes up
    env = clean_env(MLFLOW_TRACKING_USERNAME="alice", MLFLOW_TRACKING_PASSWORD="secret", MLOPS_WB_USER="mallory")
    r = mlops_wb("run", "who.ipynb", "--uri", mlflow_server, "-e", "who-server", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    server = client_for(mlflow_server)
    (run,) = server.search_runs([server.get_experiment_by_name("who-server").experiment_id])
    assert run.info.user_id == "alice"


def test_reproduce_from_another_folder_that_shares_only_the_server(tmp_path, mlflow_server):
    from mlops_wb.pipelines import write_notebook
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    write_notebook(first / "model.ipynb", "seed = 0\nn = 200",
                   "import random\nfrom mlops_wb.pipelines import record\nrandom.seed(seed)\n"
                   "record('mean', sum(random.random() for _ in range(n)) / n)")
    r = mlops_wb("run", "model.ipynb", "-p", "seed", "7", "--uri", mlflow_server, "-e", "portable", cwd=first)
    assert r.returncode == 0, r.stderr
    run_id = re.search(r"run ([0-9a-f]{32})", r.stdout).group(1)
    shutil.rmtree(first)  # the first host's folder, notebook and all, is gone
    r = mlops_wb("reproduce", run_id, "--uri", mlflow_server, cwd=second)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"reproduced: every metric of run {run_id} is identical" in r.stdout and "note:" not in r.stdout, r.stdout
    client = client_for(mlflow_server)
    again = client.search_runs([client.get_experiment_by_name("portable").experiment_id],
                               filter_string=f"tags.`mlops_wb.reproduces` = '{run_id}'")
    assert len(again) == 1 and again[0].data.params["seed"] == "7" and again[0].data.tags["mlops_wb.injected"] == "seed"
    assert again[0].data.tags["mlops_wb.notebook"].startswith(str(second.resolve()))
