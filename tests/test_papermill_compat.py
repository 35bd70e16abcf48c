"""papermill's own test notebooks, run with plain papermill and with our runner: the two must agree.

The notebooks in `papermill_notebooks/` are papermill 2.7.0's (`papermill/tests/notebooks/`). Each case runs the same
notebook with the same parameters through `papermill.execute_notebook` (the real one) and through `run_notebook`, and
compares what users see: the executed cells (sources, execution counts, outputs, the injected-parameters cell and
where it is, papermill's error banner) and the exception behaviour (papermill raises `PapermillExecutionError` with a
cell index, execution count, exception name and value; the runner ends the run FAILED and raises a `NotebookError`
carrying the same four).

Where the runner differs on purpose, a test below says so by name (`test_difference_*`), and the README's
"Differences from papermill" lists it.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from conftest import BIN, clean_env

NBS = Path(__file__).parent / "papermill_notebooks"


def normalised(path: Path) -> list[tuple]:
    "What a user sees of an executed notebook: each cell's type, source, tags, execution count and outputs."
    nb = json.loads(Path(path).read_text())
    out = []
    for c in nb["cells"]:
        outputs = []
        for o in c.get("outputs", []):
            data = o.get("data", {})
            outputs.append((o["output_type"], o.get("name"), "".join(o.get("text", "")), o.get("ename"), o.get("evalue"),
                            sorted(data), "".join(data.get("text/plain", ""))))
        src = c["source"] if isinstance(c["source"], str) else "".join(c["source"])
        out.append((c["cell_type"], src, tuple((c.get("metadata") or {}).get("tags", [])), c.get("execution_count"),
                    outputs))
    return out


def with_papermill(nb: Path, out: Path, parameters=None, kernel=None):
    "papermill.execute_notebook, as users call it: (the exception it raised or None, the executed notebook)."
    import papermill as pm

    try:
        pm.execute_notebook(str(nb), str(out), parameters=parameters, kernel_name=kernel, progress_bar=False)
        return None, normalised(out)
    except Exception as e:  # noqa: BLE001 - the exception is what we compare
        return e, normalised(out) if out.exists() else None


def with_runner(nb: Path, out: Path, client, parameters=None, kernel=None):
    "run_notebook on the same notebook: (the run's outcome, the executed notebook)."
    from mlops_wb.pipelines import run_notebook

    r = run_notebook(nb, parameters=parameters, kernel_name=kernel, output=out, client=client, experiment="compat",
                     raise_on_error=False)
    return r, normalised(out) if out.exists() else None


def agree(nb: Path, tmp_path: Path, client, parameters=None, kernel=None):
    "Run both, assert they agree on the executed notebook and on failure; return (papermill's error, our run)."
    error, theirs = with_papermill(nb, tmp_path / "papermill.ipynb", parameters, kernel)
    run, ours = with_runner(nb, tmp_path / "runner.ipynb", client, parameters, kernel)
    assert ours == theirs, f"executed notebooks differ:\npapermill: {theirs}\nrunner:    {ours}"
    if error is None:
        assert run.status == "FINISHED" and run.failure is None, run
    else:
        assert run.status == "FAILED", run
        f = run.failure
        if type(error).__name__ == "PapermillExecutionError":
            assert (f.cell_index, f.exec_count, f.ename, f.evalue) == \
                (error.cell_index, error.exec_count, error.ename, error.evalue), (f.__dict__, error.args)
        else:
            assert f.ename == type(error).__name__, (f.ename, error)
    stored = client.get_run(run.run_id)
    assert stored.info.status == run.status
    assert [a.path for a in client.list_artifacts(run.run_id, "notebook")] == ["notebook/runner.ipynb"]
    return error, run


@pytest.fixture
def client(tracking_uri):
    from mlops_wb.core import get_client
    return get_client(tracking_uri)


def test_success_with_a_parameter(tmp_path, client):
    error, run = agree(NBS / "simple_execute.ipynb", tmp_path, client, {"msg": "Hello"})
    assert error is None and run.parameters == {"msg": "Hello"} and run.injected == {"msg": "Hello"}


def test_success_without_parameters_injects_nothing(tmp_path, client):
    agree(NBS / "simple_execute.ipynb", tmp_path, client)
    assert not any("injected-parameters" in c[2] for c in normalised(tmp_path / "runner.ipynb"))


@pytest.mark.parametrize("name", ["broken1", "broken2", "line_magic_error"])
def test_failure(name, tmp_path, client):
    error, run = agree(NBS / f"{name}.ipynb", tmp_path, client)
    assert type(error).__name__ == "PapermillExecutionError"
    assert f"failed in cell In [{error.exec_count}]" in run.error
    banner = normalised(tmp_path / "runner.ipynb")[0]
    assert "papermill-error-cell-tag" in banner[2]  # papermill's banner, in both


@pytest.mark.parametrize("name", ["sysexit", "sysexit0", "systemexit"])
def test_sys_exit_without_an_error_code_is_a_success(name, tmp_path, client):
    error, run = agree(NBS / f"{name}.ipynb", tmp_path, client)
    assert error is None and run.status == "FINISHED"
    assert normalised(tmp_path / "runner.ipynb")[2][3] is None  # the cell after sys.exit() never ran


def test_sys_exit_1_is_a_failure(tmp_path, client):
    error, run = agree(NBS / "sysexit1.ipynb", tmp_path, client)
    assert (error.ename, error.evalue, run.failure.ename, run.failure.evalue) == ("SystemExit", "1", "SystemExit", "1")


def test_no_parameters_cell_injects_at_the_top(tmp_path, client):
    agree(NBS / "no_parameters.ipynb", tmp_path, client, {"msg": "Hello"})
    first = normalised(tmp_path / "runner.ipynb")[0]
    assert first[2] == ("injected-parameters",) and 'msg = "Hello"' in first[1]


def test_syntax_error_in_the_parameters_cell(tmp_path, client):
    "papermill's complex_parameters.ipynb ends its parameters cell with '= 2': both fail in that cell, notebook kept."
    error, run = agree(NBS / "complex_parameters.ipynb", tmp_path, client, {"a": 5.5})
    assert (error.ename, error.exec_count, run.failure.cell_index) == ("SyntaxError", 1, 0)
    assert run.error.startswith("The notebook complex_parameters.ipynb failed in cell In [1] ('msg = None'): SyntaxError")
    assert run.parameters == {"a": 5.5}  # a cell that does not parse has no defaults to read


def test_annotated_and_commented_parameters(tmp_path, client):
    nb = nbformat.read(NBS / "complex_parameters.ipynb", as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace("# Broken name definition\n= 2", "")
    nbformat.write(nb, tmp_path / "complex.ipynb")
    _, run = agree(tmp_path / "complex.ipynb", tmp_path, client, {"a": 5.5, "b": ["x"]})
    # the defaults, with their types, and an expression as its text
    assert run.parameters == {"msg": None, "a": 5.5, "b": ["x"], "c": None, "d": "a == 3"}, run.parameters
    params = client.get_run(run.run_id).data.params
    assert (params["a"], params["b"], params["msg"], params["d"]) == ("5.5", "['x']", "None", "a == 3")


def test_parameters_are_injected_right_after_the_first_tagged_cell(tmp_path, client):
    "Several cells tagged 'parameters': papermill injects after the first, and so does the runner."
    nb = nbformat.read(NBS / "simple_execute.ipynb", as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell("msg = 'second'\nprint('second', msg)", metadata={"tags": ["parameters"]}))
    nbformat.write(nb, tmp_path / "two.ipynb")
    agree(tmp_path / "two.ipynb", tmp_path, client, {"msg": "Hello"})
    tags = [c[2] for c in normalised(tmp_path / "runner.ipynb")]
    assert tags[:3] == [("parameters",), ("injected-parameters",), ("parameters",)], tags


def test_a_rerun_replaces_the_earlier_injected_cell(tmp_path, client):
    import papermill as pm

    pm.execute_notebook(str(NBS / "result_no_exec.ipynb"), str(tmp_path / "first.ipynb"), parameters={"foo": 2},
                        progress_bar=False)
    _, run = agree(tmp_path / "first.ipynb", tmp_path, client, {"bar": "again"})
    injected = [c for c in normalised(tmp_path / "runner.ipynb") if "injected-parameters" in c[2]]
    assert len(injected) == 1 and 'bar = "again"' in injected[0][1] and "foo" not in injected[0][1]
    assert run.parameters == {"foo": 1, "bar": "again"}
    # with nothing passed, the earlier injected cell runs as it is, and the runner records what it set
    _, run = agree(tmp_path / "first.ipynb", tmp_path, client)
    assert run.parameters == {"foo": 2, "bar": "hello"} and run.injected == {}


def test_kernel_named_explicitly(tmp_path, client):
    _, run = agree(NBS / "simple_execute.ipynb", tmp_path, client, {"msg": "k"}, kernel="python3")
    assert client.get_run(run.run_id).data.tags["mlops_wb.kernel"] == "python3"


def test_missing_kernel(tmp_path, client):
    nb = nbformat.read(NBS / "simple_execute.ipynb", as_version=4)
    nb.metadata.kernelspec = {"name": "no-such-kernel", "display_name": "R", "language": "R"}
    nbformat.write(nb, tmp_path / "r.ipynb")
    error, run = agree(tmp_path / "r.ipynb", tmp_path, client)
    assert type(error).__name__ == "NoSuchKernel" and run.failure.ename == "NoSuchKernel"
    assert "runs on the kernel 'no-such-kernel', which is not installed here" in run.error


# Ctrl-C, through each command line: papermill's and ours.

# A shell starts a command with Ctrl-C's default action. A test worker may not offer it: a library that ran in this
# process can leave SIGINT ignored or blocked, and children inherit both (papermill then ran its 60 s cell to the
# end and exited 0). So each command starts as from a shell: SIGINT unblocked, its default action, then exec.
AS_FROM_A_SHELL = ("import os, signal, sys; signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); "
                   "signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])")


def _sigint_state(pid: int) -> dict[str, bool]:
    "Whether the process `pid` ignores or blocks SIGINT, from /proc."
    fields = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)
    bit = 1 << (signal.SIGINT - 1)
    return {"ignored": bool(int(fields["SigIgn"], 16) & bit), "blocked": bool(int(fields["SigBlk"], 16) & bit)}


def _interrupt(cmd: list[str], out: Path, cwd: Path):
    "Start `cmd`, wait until the notebook's long cell runs, send SIGINT to the process; its exit code and stderr."
    proc = subprocess.Popen([sys.executable, "-c", AS_FROM_A_SHELL, *cmd], cwd=cwd, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:  # papermill saves the notebook when a cell starts
            candidates = [out] if out.name != "*" else list(out.parent.glob("keyboard_interrupt-*.ipynb"))
            if any(p.exists() and '"status": "running"' in p.read_text() for p in candidates):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.3)
        time.sleep(1.0)
        assert _sigint_state(proc.pid) == {"ignored": False, "blocked": False}, _sigint_state(proc.pid)
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, err


def test_difference_ctrl_c_exits_130_and_the_run_is_killed(tmp_path, tracking_uri):
    "Both keep the executed notebook. papermill exits 1 ('Aborted!'); mlops-wb exits 130, as shells report Ctrl-C,"
    " and its run ends KILLED with the notebook logged."
    from mlflow import MlflowClient

    shutil.copy(NBS / "keyboard_interrupt.ipynb", tmp_path / "keyboard_interrupt.ipynb")
    code, err = _interrupt([str(BIN / "papermill"), "keyboard_interrupt.ipynb", "pm-out.ipynb"], tmp_path / "pm-out.ipynb",
                           tmp_path)
    assert code == 1 and "Aborted!" in err, (code, err[-2000:])
    assert (tmp_path / "pm-out.ipynb").exists()
    code, err = _interrupt([str(BIN / "mlops-wb"), "run", "keyboard_interrupt.ipynb", "--uri", tracking_uri, "-e", "ctrl-c",
                            "--output", "wb-out.ipynb"], tmp_path / "wb-out.ipynb", tmp_path)
    lines = [ln for ln in err.splitlines() if ln.strip() and "TCP without encryption" not in ln]
    # the kernel may print its own traceback as its sockets close (under papermill too); none comes from the runner
    assert code == 130 and not re.search(r'File ".*/(mlops_wb|typer|click|papermill|nbclient)/', err), (code, err[-3000:])
    assert lines[-1].startswith("Interrupted: keyboard_interrupt.ipynb was interrupted; run ") and \
        lines[-1].endswith(f"is KILLED and the executed notebook is kept at {tmp_path / 'wb-out.ipynb'}"), lines
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ctrl-c").experiment_id])
    assert run.info.status == "KILLED"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "notebook")] == ["notebook/wb-out.ipynb"]


def test_difference_unknown_parameter_names_are_refused(tmp_path, client):
    "papermill injects a name the parameters cell does not set (with a warning); the runner refuses it before running."
    from mlops_wb.core import InvalidParameterError
    from mlops_wb.pipelines import run_notebook

    error, theirs = with_papermill(NBS / "simple_execute.ipynb", tmp_path / "pm.ipynb", {"mgs": "typo"})
    assert error is None and 'mgs = "typo"' in theirs[1][1]
    with pytest.raises(InvalidParameterError, match="has no parameter named 'mgs'. Expected some of: msg"):
        run_notebook(NBS / "simple_execute.ipynb", parameters={"mgs": "typo"}, client=client)


@pytest.mark.parametrize("value", [(1, 2), b"ab", {1: "one"}])
def test_difference_values_papermill_would_turn_into_strings_are_refused(value, tmp_path, client):
    "papermill injects a tuple or bytes as the string of its str(), and a dict's int keys as strings."
    from mlops_wb.core import InvalidParameterError
    from mlops_wb.pipelines import run_notebook

    error, theirs = with_papermill(NBS / "simple_execute.ipynb", tmp_path / "pm.ipynb", {"msg": value})
    assert error is None
    printed = theirs[2][4][0][2].strip()  # what print(msg) showed
    assert printed == str(value if not isinstance(value, dict) else {str(k): v for k, v in value.items()})
    with pytest.raises(InvalidParameterError, match="papermill"):
        run_notebook(NBS / "simple_execute.ipynb", parameters={"msg": value}, client=client)


def test_difference_a_set_is_refused_where_papermill_crashes(tmp_path, client):
    "papermill fails with a raw TypeError writing a set into the notebook's metadata; the runner refuses it first."
    from mlops_wb.core import InvalidParameterError
    from mlops_wb.pipelines import run_notebook

    error, _ = with_papermill(NBS / "simple_execute.ipynb", tmp_path / "pm.ipynb", {"msg": {1, 2}})
    assert type(error) is TypeError and "not JSON serializable" in str(error)
    with pytest.raises(InvalidParameterError, match="The parameter 'msg' is a set"):
        run_notebook(NBS / "simple_execute.ipynb", parameters={"msg": {1, 2}}, client=client)


def test_float_specials_arrive_as_floats(tmp_path, client):
    "nan and inf: papermill injects float('nan') and float('inf'); so does the runner."
    nb = nbformat.read(NBS / "simple_execute.ipynb", as_version=4)
    nb.cells[1].source = "print(repr(msg))"
    nbformat.write(nb, tmp_path / "f.ipynb")
    _, run = agree(tmp_path / "f.ipynb", tmp_path, client, {"msg": [math.nan, math.inf, -math.inf]})
    assert normalised(tmp_path / "runner.ipynb")[2][4][0][2].strip() == "[nan, inf, -inf]"
