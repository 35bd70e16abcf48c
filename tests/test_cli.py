"""The `mlops-wb` console script, run as a user runs it: a real process, a real MLflow store or server."""
from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import BIN, clean_env

MLOPS_WB = str(BIN / "mlops-wb")


def run(*args, cwd, env=None, check=True):
    r = subprocess.run([MLOPS_WB, *args], cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, f"mlops-wb {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def one_error_line(r, code: int) -> str:
    "Assert the process exited with `code` and wrote exactly one line, 'Error: ...', to stderr; return it."
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == code, f"exit {r.returncode}, expected {code}:\n{r.stdout[-1500:]}\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), f"expected one 'Error: ...' line, got:\n{r.stderr}"
    return lines[0]


def test_help_and_version(tmp_path):
    r = run("--help", cwd=tmp_path)
    assert "init" in r.stdout and "info" in r.stdout
    import mlops_wb
    assert run("--version", cwd=tmp_path).stdout.strip() == f"mlops-wb {mlops_wb.__version__}"
    r = run("no-such-command", cwd=tmp_path, check=False)
    assert "No such command" in one_error_line(r, 2)
    r = run(cwd=tmp_path, check=False)  # no command: the help
    assert r.returncode == 0 and "Commands" in r.stdout and not r.stderr.strip(), r.stderr


def test_info_in_empty_folder_only_reads(tmp_path):
    r = run("info", cwd=tmp_path)
    db = tmp_path.resolve() / ".mlops_wb" / "mlflow.db"
    assert f"tracking URI: sqlite:///{db}" in r.stdout
    assert "from: embedded default" in r.stdout
    assert "settings file: none (built-in defaults)" in r.stdout
    assert f"no store yet at {db}" in r.stdout
    data = json.loads(run("info", "--json", cwd=tmp_path).stdout)
    assert (data["tracking_uri_source"], data["store_exists"], data["experiments"]) == ("embedded default", False, [])
    assert list(tmp_path.iterdir()) == [], "info must not create a store or a folder"


def test_info_reads_an_existing_store(tmp_path, tracking_uri):
    data = json.loads(run("info", "--json", "--uri", tracking_uri, cwd=tmp_path).stdout)
    assert data["store_exists"] is True and [e["name"] for e in data["experiments"]] == ["Default"]


def test_init_writes_commented_settings_and_refuses_to_overwrite(tmp_path):
    run("init", cwd=tmp_path)
    text = (tmp_path / "settings.ini").read_text()
    for section in ("[tracking]", "[registry]", "[drift]", "[gates]", "[approval]"):
        assert section in text
    assert "# Significance level" in text and "p_value_threshold = 0.05" in text
    r = run("init", cwd=tmp_path, check=False)
    assert "already exists, and init never overwrites a settings file" in one_error_line(r, 1)
    # with a settings file, info says so, and the embedded store sits beside it even when run from below
    (tmp_path / "sub").mkdir()
    r = run("info", cwd=tmp_path / "sub")
    assert f"settings file: {tmp_path.resolve() / 'settings.ini'}" in r.stdout
    assert f"sqlite:///{tmp_path.resolve()}/.mlops_wb/mlflow.db" in r.stdout


def test_bad_settings_value_is_reported_with_file_section_key(tmp_path):
    (tmp_path / "settings.ini").write_text("[drift]\ndrift_share = 2\n")
    r = run("info", cwd=tmp_path, check=False)
    assert (f"Error: In {tmp_path.resolve()}/settings.ini, section [drift], key 'drift_share': the value '2' is not "
            "valid. Expected a number in (0, 1].") in one_error_line(r, 1)


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
    line = one_error_line(r, 1)
    assert line.startswith("Error: Could not read the tracking store http://127.0.0.1:"), line
    assert "Check that the server is running" in line


# Every command and sub-command, enumerated from the click group at test time, so commands added later are covered.

def _commands():
    "(path, command) for every command and sub-command of the CLI, groups included."
    from mlops_wb.cli import load_commands

    out = []

    def walk(group, path):
        for name in group.list_commands(None):
            cmd = group.get_command(None, name)
            out.append(((*path, name), cmd))
            if hasattr(cmd, "list_commands"):
                walk(cmd, (*path, name))

    walk(load_commands(), ())
    return out


COMMANDS = _commands()


def _check_command(path, cmd, cwd):
    problems = []
    r = subprocess.run([MLOPS_WB, *path, "--help"], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=300)
    if r.returncode != 0 or "Usage" not in r.stdout or r.stderr.strip():
        problems.append(f"--help: exit {r.returncode}\n{r.stdout[-800:]}\n{r.stderr[-1500:]}")
    cases = [["--no-such-option-x"]]
    if any(getattr(p, "required", False) for p in cmd.params) and not hasattr(cmd, "list_commands"):
        cases.append([])  # a required argument or option left out
    for extra in cases:
        r = subprocess.run([MLOPS_WB, *path, *extra], cwd=cwd, env=clean_env(), capture_output=True, text=True,
                           timeout=300)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        if r.returncode != 2 or "Traceback" in r.stderr or len(lines) != 1 or not lines[0].startswith("Error: ") \
                or "Usage: mlops-wb " + " ".join(path) not in lines[0]:
            problems.append(f"{extra or '(no arguments)'}: exit {r.returncode}, expected 2 with one line:\n{r.stderr[-1500:]}")
    return problems


def test_every_command_has_help_and_one_line_usage_errors(tmp_path):
    assert len(COMMANDS) >= 30 and ("run",) in [p for p, _ in COMMANDS] and ("server", "start") in [p for p, _ in COMMANDS]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda pc: (pc[0], _check_command(*pc, tmp_path)), COMMANDS))
    failed = {" ".join(p): probs for p, probs in results if probs}
    assert not failed, "\n\n".join(f"mlops-wb {k}:\n" + "\n".join(v) for k, v in failed.items())
    assert list(tmp_path.iterdir()) == [], "--help and usage errors must not write anything"


def test_mlopswb_error_is_one_line_exit_1(tmp_path):
    r = run("run", "no-such-pipeline", cwd=tmp_path, check=False)
    assert one_error_line(r, 1).startswith("Error: No pipeline notebook named 'no-such-pipeline'.")
    r = run("run", "ingest", "-p", "datset", "wine", cwd=tmp_path, check=False)
    line = one_error_line(r, 1)
    assert "The notebook ingest.ipynb has no parameter named 'datset'. Expected some of: dataset, target" in line
    assert list(tmp_path.iterdir()) == [], "a refused run must not create a store"


def test_run_refuses_a_yaml_python_tag_in_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("dataset: !!python/object/apply:os.system ['touch pwned']\n")
    r = run("run", "ingest", "-f", "params.yaml", cwd=tmp_path, check=False)
    line = one_error_line(r, 1)
    assert "params.yaml is not plain YAML (line 1): could not determine a constructor for the tag" in line, line
    assert not (tmp_path / "pwned").exists()


def test_unexpected_exception_is_one_line_and_verbose_shows_its_traceback(monkeypatch, capsys):
    "A bug in a command: one line and exit 1; the traceback only under -v."
    import typer

    import mlops_wb.cli as cli
    from mlops_wb.cli.base import app

    buggy = typer.Typer()
    buggy.callback()(app.registered_callback.callback)

    @buggy.command("boom")
    def boom() -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "load_commands", lambda command=None, **kw: typer.main.get_command(buggy))
    for args, traceback_shown in ((["boom"], False), (["-v", "boom"], True)):
        with pytest.raises(SystemExit) as e:
            cli.main(args)
        err = capsys.readouterr().err
        assert e.value.code == 1
        assert err.strip().splitlines()[-1] == ("Error: unexpected KeyError: 'a bug'. This is a bug in mlops_wb; run the "
                                                "command again with -v for the traceback, and report it.")
        assert ("Traceback" in err) is traceback_shown, err


def test_verbose_and_quiet_set_the_mlops_wb_logger(tmp_path, tracking_uri):
    from mlops_wb.pipelines import write_notebook

    write_notebook(tmp_path / "nb.ipynb", "x = 1", "print(x)")
    quiet = run("-q", "run", "nb.ipynb", "--uri", tracking_uri, cwd=tmp_path)
    loud = run("-v", "run", "nb.ipynb", "--uri", tracking_uri, cwd=tmp_path)
    assert "DEBUG mlops_wb.pipelines.runner: run " in loud.stderr, loud.stderr
    assert "mlops_wb.pipelines" not in quiet.stderr, quiet.stderr
    # the kernel runs over private local sockets: ipykernel has no unencrypted TCP to warn about
    assert "without encryption" not in quiet.stderr + loud.stderr, quiet.stderr
    r = run("-v", "-q", "info", cwd=tmp_path, check=False)
    assert "use --verbose or --quiet, not both" in one_error_line(r, 2)


def _imported(args, cwd):
    "The modules loaded when the console script's entry point runs `args` (sys.modules at exit, in a fresh process)."
    code = ("import atexit, sys; atexit.register(lambda: sys.__stderr__.write('MODULES ' + ' '.join(sorted(sys.modules)) "
            f"+ chr(10))); sys.argv = ['mlops-wb', *{args!r}]; from mlops_wb.cli import main; main()")
    r = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return set(r.stderr.split("MODULES ", 1)[1].split())


HEAVY = ("pandas", "mlflow", "papermill", "sklearn", "plotly")


def _heavy_top_level_imports():
    "Imports at the top of the command modules that load the library or a heavy package (they belong in the commands)."
    import ast

    from conftest import REPO

    out = []
    for path in sorted((REPO / "mlops_wb" / "cli").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                rel = isinstance(node, ast.ImportFrom) and node.level > 0
                for n in names:
                    lib = rel and node.level == 2 and not n.startswith(("core", "cli")) or (not rel and n.split(".")[0] in HEAVY)
                    if lib and n:
                        out.append(f"mlops_wb/cli/{path.name}:{node.lineno} imports {'..' if rel else ''}{n}")
    return out


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["--version"]])
def test_help_is_light(args, tmp_path):
    "Help and version import neither pandas nor MLflow (nor papermill): they answer at once."
    mods = _imported(args, tmp_path)
    assert "mlops_wb.cli" in mods  # the measurement sees our own imports
    heavy = sorted(m for m in mods if m.split(".")[0] in HEAVY)
    assert not heavy, (f"mlops-wb {' '.join(args)} imported {sorted({m.split('.')[0] for m in heavy})}. Command "
                       "modules must import the library inside their commands, not at the top: "
                       + "; ".join(_heavy_top_level_imports()))


def test_running_a_command_loads_only_its_module(tmp_path):
    mods = _imported(["run", "--help"], tmp_path)
    assert "mlops_wb.cli.pipelines" in mods
    assert not {"mlops_wb.cli.data", "mlops_wb.cli.drift", "mlops_wb.cli.tracking", "mlops_wb.cli.registry"} & mods


def test_help_shows_settings_sections_as_written(tmp_path):
    "Help text names settings as `[section] key`: printed as written, never eaten as markup."
    r = subprocess.run([MLOPS_WB, "audit", "--help"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Registered model (default: [registry] model_name)." in " ".join(r.stdout.split()), r.stdout
