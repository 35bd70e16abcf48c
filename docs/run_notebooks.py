"""Execute the module notebooks once, the way `nbdev-test` does, and keep the executed copies for the docs.

Each notebook runs in a process of its own, in its own folder, in nbdev's in-process shell (execnb), with
nbdev's rules for which cells run: `#| eval: false` cells and cells carrying a flag of `tst_flags` (`#| notest`)
are skipped. So a notebook that passes here passes `nbdev-test`, and the reverse.

On Linux that process is forked from a warm one, one per job slot, that has already imported what every notebook
imports (`PRELOAD`: nbdev and execnb, mlflow, pandas, scikit-learn, plotly, the package's families), so a notebook
does not spend its first 10 s importing them. The warm process starts with the notebooks' environment and
`sys.path` and runs nothing of a notebook's, and every notebook gets a fork of it as it was after the imports:
nothing one notebook does is seen by the next. (What the forks of one warm process share is its seed of `str`
hashes, still random, which fresh interpreters each draw anew.) Elsewhere, or with MLOPS_WB_NOTEBOOK_FORK=0, each
notebook starts a fresh interpreter instead.

The executed copy lands in a cache (`docs/_build/executed/`, ignored by git) beside a small JSON record whose
`key` is a content hash of everything the run depends on: the notebook, the package sources and assets, the
project files, this script and the versions of every installed distribution. `make docs` renders from the cache
and executes only the notebooks whose copy is missing or stale; the test suite executes every notebook once per
run (tests/test_literate.py) and refreshes the cache as it goes.

    python docs/run_notebooks.py [NOTEBOOK ...] [--jobs N] [--force]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import select
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NBS = REPO / "nbs"
CACHE = REPO / "docs" / "_build" / "executed"
# Notebooks rendered without executing them: they need a project with a store, or parameters from papermill.
UNEXECUTED = ("workbench.ipynb", "pipelines/")
# What a run depends on besides its notebook (the notebooks import the whole package, and some run the pipelines).
DEPENDENCIES = ("mlops_wb", "nbs/pipelines", "pyproject.toml", "settings.ini", "docs/run_notebooks.py")
TIMEOUT = float(os.environ.get("MLOPS_WB_NOTEBOOK_TIMEOUT", "900"))  # seconds for one notebook, all cells
# What the warm process imports once, before it forks a notebook's process: the runner's own modules (nbdev's cells
# and execnb's shell), the stack the notebooks share, and the package's families (`mlops_wb.*`: each subpackage, its
# face). Only modules that start no Python thread when imported belong here (forking a process with threads can
# deadlock the child; the warm process checks, and on a thread the notebooks run in fresh interpreters), so dask's
# `distributed` and the web servers stay out; the native pools numpy's and scipy's OpenBLAS and pyarrow's jemalloc
# start are fork-aware (they stop and restart around a fork, as for multiprocessing's fork). matplotlib.pyplot and
# ipywidgets stay out too: imported, they look for a running IPython shell, which a notebook's process has and this
# one has not. A module that fails to import is left to the notebook, which then fails as it would without this.
PRELOAD = ("fastcore.nbio", "fastcore.xtras", "nbdev.config", "nbdev.process", "nbdev.test", "execnb.shell",
           "numpy", "pandas", "scipy.stats", "sqlalchemy", "mlflow", "mlflow.sklearn", "sklearn",
           "sklearn.linear_model", "sklearn.ensemble", "sklearn.model_selection", "sklearn.metrics",
           "plotly.graph_objects", "plotly.subplots", "plotly.io", "matplotlib", "mlops_wb.*")
# Fork a warm process per notebook (Linux only: elsewhere fork is unavailable or unsafe with the system's libraries).
FORK = sys.platform.startswith("linux") and os.environ.get("MLOPS_WB_NOTEBOOK_FORK", "1") != "0"


def default_jobs() -> int:
    "Notebooks at a time: MLOPS_WB_DOCS_JOBS, else the CPU count."
    return int(os.environ.get("MLOPS_WB_DOCS_JOBS", 0)) or os.cpu_count() or 1


def all_notebooks() -> list[Path]:
    "Every notebook under nbs/, in the order of their names (their numbers)."
    return sorted(p for p in NBS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts and not p.name.startswith("_"))


def executable(nb: Path) -> bool:
    "Whether the docs show `nb` executed (module notebooks) or as written (the workbench and the pipelines)."
    rel = nb.relative_to(NBS).as_posix()
    return not any(rel == u or rel.startswith(u) for u in UNEXECUTED)


def notebooks_to_execute() -> list[Path]:
    "The module notebooks, which the docs show with their outputs and the tests execute."
    return [nb for nb in all_notebooks() if executable(nb)]


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and ".ipynb_checkpoints" not in p.parts and p.suffix not in (".pyc", ".db"))


def environment_key() -> str:
    "A hash of what every notebook run depends on, besides the notebook itself."
    h = hashlib.sha256()
    for dep in DEPENDENCIES:
        for f in _files(REPO / dep):
            h.update(f.relative_to(REPO).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    # the installed distributions, not a build's egg-info in the project folder that `python -m pytest` puts on the
    # path: the key is the same for `make docs` and for the test suite, which then share the cache
    paths = [p for p in sys.path if Path(p or ".").resolve() != REPO]
    dists = sorted({f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions(path=paths)
                    if d.metadata["Name"]})
    h.update(("\n".join(dists) + sys.version).encode())
    return h.hexdigest()


def notebook_key(nb: Path, env_key: str) -> str:
    "The cache key of one notebook: its bytes and the environment key."
    return hashlib.sha256(nb.read_bytes() + env_key.encode()).hexdigest()


def cached_path(nb: Path) -> Path:
    "Where the executed copy of `nb` is kept."
    return CACHE / nb.relative_to(NBS)


@dataclass
class Result:
    "The outcome of executing one notebook."
    notebook: str  # relative to nbs/
    ok: bool
    seconds: float
    key: str
    error: str = ""  # the failing cell's traceback, as nbdev-test prints it
    cached: bool = False  # taken from the cache, not executed now

    @property
    def record(self) -> Path:
        return cached_path(NBS / self.notebook).with_suffix(".json")


def cached_result(nb: Path, key: str) -> Result | None:
    "The cached, successful result for `nb` under `key`, or None when it is missing or stale."
    rec = cached_path(nb).with_suffix(".json")
    if not (rec.exists() and cached_path(nb).exists()):
        return None
    try:
        data = json.loads(rec.read_text())
    except ValueError:
        return None
    if data.get("key") != key or not data.get("ok"):
        return None
    return Result(**{**data, "cached": True})


def notebook_env() -> dict[str, str]:
    "The environment a notebook runs in: the caller's, without MLflow's telemetry, with plotly's notebook renderer."
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PLOTLY_RENDERER": "plotly_mimetype"}


def execute_one(nb: Path, key: str, warm: Warm | None = None) -> Result:
    """Execute `nb` in a process of its own (a fork of `warm`, else a fresh interpreter) and keep the executed copy;
    a failure keeps the traceback, not the copy."""
    out = cached_path(nb)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    rel = nb.relative_to(NBS).as_posix()
    start = time.time()
    if warm is not None:
        code, stdout, stderr = warm.run(nb, tmp, TIMEOUT)
    else:
        try:
            r = subprocess.run([sys.executable, __file__, "--execute-one", str(nb), str(tmp)], cwd=nb.parent,
                               env=notebook_env(), capture_output=True, text=True, timeout=TIMEOUT)
            code, stdout, stderr = r.returncode, r.stdout, r.stderr
        except subprocess.TimeoutExpired as e:
            err = e.stderr or ""
            code, stdout, stderr = None, "", err.decode(errors="replace") if isinstance(err, bytes) else err
    if code is None:
        ok, error = False, f"{rel} did not finish in {TIMEOUT:.0f} s (MLOPS_WB_NOTEBOOK_TIMEOUT).\n{stderr}"
    else:
        ok, error = code == 0, (stderr[-12000:] or stdout[-4000:])
    res = Result(rel, ok, round(time.time() - start, 2), key, "" if ok else error)
    out.with_suffix(".json").unlink(missing_ok=True)
    if ok:
        tmp.replace(out)
        res.record.write_text(json.dumps({k: v for k, v in asdict(res).items() if k != "cached"}, indent=1) + "\n")
    else:
        tmp.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
    return res


class Warm:
    """A warm process (`--serve`): it imports `PRELOAD` once, then forks a child per notebook it is given, which runs
    the notebook as `--execute-one` would in a fresh interpreter. One per job slot; it runs one notebook at a time."""

    def __init__(self, env: dict[str, str]):
        # started as a notebook's fresh interpreter is: this script, the notebooks' environment, in nbs/
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(NBS)], cwd=NBS, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ready: bool | None = None
        self.why = ""

    def _answer(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise EOFError("the warm process ended")
        return json.loads(line)

    def wait_ready(self) -> bool:
        "Whether the warm process imported what it preloads and can fork; `why` says why not."
        if self.ready is None:
            try:
                # nothing read yet, so nothing buffered: select sees the first answer (imports take 10-60 s)
                if not select.select([self.proc.stdout], [], [], 600)[0]:
                    self.proc.kill()
                    raise EOFError(f"the warm process did not import {PRELOAD} in 600 s")
                a = self._answer()
                self.ready, self.why = bool(a.get("ready")), a.get("why", "")
            except (EOFError, ValueError) as e:
                self.ready, self.why = False, str(e)
        return self.ready and self.proc.poll() is None

    def run(self, nb: Path, dst: Path, timeout: float) -> tuple[int | None, str, str]:
        "Run `nb` in a fork, writing `dst`: its exit code (None when it was killed after `timeout` s), stdout, stderr."
        fd_out, out = tempfile.mkstemp(prefix="notebook-", suffix=".stdout")
        fd_err, err = tempfile.mkstemp(prefix="notebook-", suffix=".stderr")
        os.close(fd_out)
        os.close(fd_err)
        try:
            try:
                self.proc.stdin.write(json.dumps({"src": str(nb), "dst": str(dst), "stdout": out, "stderr": err,
                                                  "timeout": timeout}) + "\n")
                self.proc.stdin.flush()
                a = self._answer()
                code = None if a["timed_out"] else a["returncode"]
            except (EOFError, OSError, ValueError) as e:  # the warm process died (or was ended): so did the notebook
                code = -1
                with open(err, "a") as f:
                    f.write(f"\n{nb.name}: {e}\n")
            return code, Path(out).read_text(errors="replace"), Path(err).read_text(errors="replace")
        finally:
            Path(out).unlink(missing_ok=True)
            Path(err).unlink(missing_ok=True)

    def close(self) -> None:
        "End the warm process; a notebook still running in it is killed (it kills its child on SIGTERM)."
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


class WarmPool:
    "`n` warm processes, each lent to one notebook at a time; without fork, none, and the notebooks start fresh."

    def __init__(self):
        self.idle: queue.SimpleQueue[Warm] = queue.SimpleQueue()
        self.all: list[Warm] = []
        self.closed = False

    def start(self, n: int, env: dict[str, str]) -> None:
        for _ in range(n if FORK else 0):
            self.all.append(Warm(env))
            self.idle.put(self.all[-1])

    def execute_one(self, nb: Path, key: str) -> Result:
        if not self.all:
            return execute_one(nb, key)
        w = self.idle.get()
        try:
            if self.closed:
                raise RuntimeError("the notebooks were stopped")
            if not w.wait_ready():
                if w.why:
                    print(f"run_notebooks: no warm process ({w.why}); the notebooks start fresh interpreters",
                          file=sys.stderr, flush=True)
                    w.why = ""
                return execute_one(nb, key)
            return execute_one(nb, key, w)
        finally:
            self.idle.put(w)

    def close(self) -> None:
        self.closed = True
        for w in self.all:
            w.close()


def execute(notebooks: list[Path] | None = None, *, jobs: int | None = None, force: bool = False,
            progress: bool = True) -> list[Result]:
    "Execute `notebooks` (default: all module notebooks) `jobs` at a time, reusing fresh cached copies unless `force`."
    notebooks = notebooks_to_execute() if notebooks is None else [Path(n).resolve() for n in notebooks]
    jobs = jobs or default_jobs()
    env_key = environment_key()
    results: dict[Path, Result] = {}
    todo = []
    for nb in notebooks:
        key = notebook_key(nb, env_key)
        hit = None if force else cached_result(nb, key)
        if hit:
            results[nb] = hit
        else:
            todo.append((nb, key))
    if progress and todo:
        print(f"executing {len(todo)} notebook(s), {jobs} at a time ({len(results)} fresh in the cache)", flush=True)
    # the longest notebooks first, by their last time, so the pool ends together
    last = {nb: _last_seconds(nb) for nb, _ in todo}
    todo.sort(key=lambda t: -last[t[0]])
    if not todo:
        return [results[nb] for nb in notebooks]
    # the warm processes start now, with this process's environment, and end with this call, however it ends
    warm, pool = WarmPool(), ThreadPoolExecutor(max_workers=jobs)
    try:
        warm.start(min(jobs, len(todo)), notebook_env())
        for res in pool.map(lambda t: warm.execute_one(*t), todo):
            results[NBS / res.notebook] = res
            if progress:
                print(f"  {'ok  ' if res.ok else 'FAIL'} {res.notebook} ({res.seconds:.1f} s)", flush=True)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        warm.close()
        pool.shutdown(wait=True)
    return [results[nb] for nb in notebooks]


def _last_seconds(nb: Path) -> float:
    try:
        return float(json.loads(cached_path(nb).with_suffix(".json").read_text())["seconds"])
    except (OSError, ValueError, KeyError):
        return 0.0


def _execute_here(src: Path, dst: Path) -> int:
    "The child process: run `src` as nbdev-test does (same cells, same shell, same folder) and write `dst`."
    from fastcore.nbio import write_nb
    from fastcore.xtras import working_directory
    from nbdev.config import get_config
    from nbdev.process import NBProcessor
    from nbdev.test import nb_test_cells
    from execnb.shell import CaptureShell

    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path.pop(0)  # this folder is no part of the notebook's world
    cfg = get_config(src.parent)
    flags = cfg.tst_flags.split() if isinstance(cfg.tst_flags, str) else list(cfg.tst_flags or [])
    nb = NBProcessor(src, rm_directives=False, process=True).nb
    run = {c.idx_ for c in nb_test_cells(src, flags)}
    os.environ["IN_TEST"] = "1"
    sys.path.insert(0, str(cfg.config_path))
    shell = CaptureShell(src)
    try:
        with working_directory(src.parent):
            shell.run_all(nb, exc_stop=True, preproc=lambda c: c.idx_ not in run, cell_timeout=cfg.cell_timeout or None)
    except Exception:  # noqa: BLE001 - report the failing cell as nbdev-test does, then fail
        import traceback

        sys.stderr.write((shell.prettytb(fname=src) or traceback.format_exc()) + "\n")
        return 1
    write_nb(nb, dst)
    return 0


def _preload_names() -> list[str]:
    "`PRELOAD`, with `pkg.*` spelled out as each subpackage of `pkg`."
    import importlib
    import pkgutil

    names = []
    for name in PRELOAD:
        if name.endswith(".*"):
            pkg = importlib.import_module(name[:-2])
            names += [f"{pkg.__name__}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__) if m.ispkg]
        else:
            names.append(name)
    return names


def _serve(nbs: Path) -> int:
    """The warm process: import `PRELOAD` as a notebook of `nbs` would, then for each request on stdin (a JSON line)
    fork a child that runs `_execute_here`, wait for it (killing it after the request's timeout) and answer its exit
    code on stdout. The child returns from here, and so exits as a fresh `--execute-one` interpreter does."""
    import importlib
    import threading
    import warnings

    global _running
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the imports print goes to stderr, not into the answers
    # a child gets back the handlers this process started with (as a fresh interpreter, from the caller); this one
    # leaves Ctrl-C to the notebook and the caller, which ends it (SIGTERM: it ends the notebook, then itself)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminated)
    from nbdev.config import get_config

    # import as the notebooks' processes do: this folder out of the path, the project first (the package is the
    # project's); the path is then put back, as a child's `_execute_here` changes it as a fresh interpreter's
    here, saved = Path(__file__).resolve().parent, list(sys.path)
    project = str(get_config(nbs).config_path)
    sys.path[:] = [project] + [p for i, p in enumerate(saved) if not (i == 0 and Path(p).resolve() == here)]
    try:
        names = _preload_names()
    except Exception:  # noqa: BLE001 - a package that cannot be imported is the notebooks' to report
        names = [n for n in PRELOAD if not n.endswith(".*")]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - see PRELOAD
            continue
    sys.path[:] = saved
    # the project's own modules (the package), not those of an environment that may live in the project's folder
    ours = [n for n, m in sys.modules.items() if _inside(getattr(m, "__file__", None), project)
            and not _inside(m.__file__, sys.prefix) and "site-packages" not in Path(m.__file__).parts]

    def answer(**kw) -> None:
        answers.write(json.dumps(kw) + "\n")
        answers.flush()

    if threading.active_count() != 1:  # a thread's locks would be held forever in a child
        answer(ready=False, why=f"importing {PRELOAD} started threads: {[t.name for t in threading.enumerate()]}")
        return 0
    answer(ready=True)
    for line in sys.stdin:
        req = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        with warnings.catch_warnings():  # Python 3.12+ warns of any thread; see PRELOAD for the native ones
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            answers.close()
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            return _child(req, project, ours)
        _running = pid
        deadline, timed_out = time.monotonic() + req["timeout"], False
        while not (status := os.waitpid(pid, os.WNOHANG))[0]:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)  # not reaped yet, so the pid is still the child's
                status, timed_out = os.waitpid(pid, 0), True
                break
            time.sleep(0.05)
        _running = None
        answer(returncode=os.waitstatus_to_exitcode(status[1]), timed_out=timed_out)
    return 0


_running: int | None = None  # the warm process's running child


def _terminated(signum, frame) -> None:
    "SIGTERM in the warm process: kill the notebook it runs, then exit."
    if _running is not None:
        try:
            os.kill(_running, signal.SIGKILL)
            os.waitpid(_running, 0)
        except OSError:  # it had just ended
            pass
    os._exit(1)


def _inside(file: str | None, folder: str) -> bool:
    return bool(file) and Path(file).resolve().is_relative_to(Path(folder).resolve())


def _child(req: dict, project: str, ours: list[str]) -> int:
    "A forked notebook process: made what a fresh `--execute-one` interpreter is at its start, then `_execute_here`."
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
        f = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.dup2(f, fd)
        os.close(f)
    src = Path(req["src"])
    os.chdir(src.parent)
    sys.argv = [__file__, "--execute-one", req["src"], req["dst"]]
    if "numpy" in sys.modules:  # a fresh interpreter seeds numpy's global generator from the OS; a fork copies it
        sys.modules["numpy"].random.seed()
    from nbdev.config import get_config

    if str(get_config(src.parent).config_path) != project:
        # another project's notebook: it imports its packages from its own folder, not the preloaded project's
        for name in ours:
            sys.modules.pop(name, None)
    return _execute_here(src, Path(req["dst"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", help="notebooks to execute (default: every module notebook)")
    p.add_argument("--jobs", "-j", type=int, default=None, help="notebooks at a time (default: the CPU count)")
    p.add_argument("--force", action="store_true", help="execute even when the cached copy is fresh")
    p.add_argument("--execute-one", nargs=2, metavar=("SRC", "DST"), help=argparse.SUPPRESS)
    p.add_argument("--serve", metavar="NBS", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.serve:
        return _serve(Path(a.serve))
    if a.execute_one:
        return _execute_here(Path(a.execute_one[0]), Path(a.execute_one[1]))
    results = execute(a.notebooks or None, jobs=a.jobs, force=a.force)
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"\n{r.notebook} failed:\n{r.error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
