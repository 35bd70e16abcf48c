"""Execute the module notebooks once, the way `nbdev-test` does, and keep the executed copies for the docs.

Each notebook runs in a fresh Python process, in its own folder, in nbdev's in-process shell (execnb), with
nbdev's rules for which cells run: `#| eval: false` cells and cells carrying a flag of `tst_flags` (`#| notest`)
are skipped. So a notebook that passes here passes `nbdev-test`, and the reverse.

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
import subprocess
import sys
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


def execute_one(nb: Path, key: str) -> Result:
    "Execute `nb` in a fresh process and keep the executed copy; a failure keeps the traceback, not the copy."
    out = cached_path(nb)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    rel = nb.relative_to(NBS).as_posix()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PLOTLY_RENDERER": "plotly_mimetype"}
    start = time.time()
    try:
        r = subprocess.run([sys.executable, __file__, "--execute-one", str(nb), str(tmp)], cwd=nb.parent, env=env,
                           capture_output=True, text=True, timeout=TIMEOUT)
        ok, error = r.returncode == 0, (r.stderr[-12000:] or r.stdout[-4000:])
    except subprocess.TimeoutExpired as e:
        ok, error = False, f"{rel} did not finish in {TIMEOUT:.0f} s (MLOPS_WB_NOTEBOOK_TIMEOUT).\n{e.stderr or ''}"
    res = Result(rel, ok, round(time.time() - start, 2), key, "" if ok else error)
    out.with_suffix(".json").unlink(missing_ok=True)
    if ok:
        tmp.replace(out)
        res.record.write_text(json.dumps({k: v for k, v in asdict(res).items() if k != "cached"}, indent=1) + "\n")
    else:
        tmp.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
    return res


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
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for res in pool.map(lambda t: execute_one(*t), todo):
            results[NBS / res.notebook] = res
            if progress:
                print(f"  {'ok  ' if res.ok else 'FAIL'} {res.notebook} ({res.seconds:.1f} s)", flush=True)
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", help="notebooks to execute (default: every module notebook)")
    p.add_argument("--jobs", "-j", type=int, default=None, help="notebooks at a time (default: the CPU count)")
    p.add_argument("--force", action="store_true", help="execute even when the cached copy is fresh")
    p.add_argument("--execute-one", nargs=2, metavar=("SRC", "DST"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.execute_one:
        return _execute_here(Path(a.execute_one[0]), Path(a.execute_one[1]))
    results = execute(a.notebooks or None, jobs=a.jobs, force=a.force)
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"\n{r.notebook} failed:\n{r.error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
