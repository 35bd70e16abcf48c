"""Property tests of every public way to pass parameters: the result equals papermill's, or is an `MlopsWbError`.

- `run_notebook(parameters=...)`: the notebook the runner would execute (its `prepare_run` step, which the run uses)
  has the injected-parameters cell papermill's `parameterize_notebook` makes, at the same place; and that cell, run,
  gives back exactly the values passed;
- `mlops-wb run -p NAME VALUE` (parsed by the real command line) gives the parameters `papermill -p NAME VALUE` gives;
- `mlops-wb run -f params.yaml` reads a file as `papermill -f params.yaml` does;
- a pipeline spec's step parameters reach the notebook as papermill would inject the same YAML.

papermill is run for real: its API, and its command line through click's test runner with `--prepare-only`.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_wb.core import MlopsWbError

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
IDENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
LEAVES = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
          | st.binary(max_size=4) | st.integers().map(lambda i: __import__("numpy").int64(i % 2**62)))
VALUES = st.recursive(LEAVES, lambda kids: st.lists(kids, max_size=3) | st.tuples(kids, kids)
                      | st.dictionaries(st.text(max_size=4) | st.integers(), kids, max_size=3)
                      | st.frozensets(st.integers(), max_size=3).map(set), max_leaves=8)


@pytest.fixture(scope="module")
def notebooks():
    from mlops_wb.pipelines import write_notebook

    d = Path(tempfile.mkdtemp(prefix="mlops_wb_params_"))
    return {"free": write_notebook(d / "free.ipynb", None, "print('body')"),
            "cell": write_notebook(d / "cell.ipynb", "a = 1\nb = 'x'\nc = [1, 2]\nd = None", "print(a, b, c, d)"),
            "dir": d}


def same(a, b) -> bool:
    "Equal, with nan equal to nan and types kept (True is not 1, 1.0 is not 1)."
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def papermill_injects(nb: Path, params: dict):
    "The notebook papermill would execute: parameterize_notebook on papermill's own reading of the file."
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    node = load_notebook_node(str(nb))
    return parameterize_notebook(node, params) if params else node


def cells(nb) -> list[tuple]:
    return [(c.cell_type, c.source, tuple(c.metadata.get("tags", []))) for c in nb.cells]


def check_run_notebook(nb: Path, params: dict) -> None:
    from mlops_wb.pipelines.runner import prepare_run

    try:
        plan = prepare_run(nb, parameters=params)
    except MlopsWbError:
        return
    assert cells(plan.parameterized()) == cells(papermill_injects(nb, params))
    injected = next((c.source for c in plan.parameterized().cells if "injected-parameters" in c.metadata.get("tags", [])), "")
    namespace: dict = {}
    exec(injected, {}, namespace)  # noqa: S102 - the cell the kernel would run
    assert namespace.keys() == params.keys() and all(same(namespace[k], params[k]) for k in params), (injected, params)


@SETTINGS
@given(params=st.dictionaries(IDENT | st.text(max_size=5), VALUES, max_size=4))
def test_run_notebook_parameters_without_a_parameters_cell(notebooks, params):
    check_run_notebook(notebooks["free"], params)


@SETTINGS
@given(params=st.dictionaries(st.sampled_from(["a", "b", "c", "d"]) | IDENT, VALUES, max_size=4))
def test_run_notebook_parameters_with_a_parameters_cell(notebooks, params):
    check_run_notebook(notebooks["cell"], params)


def papermill_cli_parameters(nb: Path, args: list[str], out: Path):
    "The parameters papermill's command line reads from `args` (with --prepare-only: nothing runs); or its exception."
    import nbformat
    from click.testing import CliRunner
    from papermill.cli import papermill

    r = CliRunner().invoke(papermill, [str(nb), str(out), *args, "--prepare-only"])
    if r.exit_code != 0:
        return r.exception or SystemExit(r.exit_code)
    return dict(nbformat.read(str(out), as_version=4).metadata.papermill.parameters)


def our_cli_parameters(nb: Path, args: list[str]):
    "The parameters `mlops-wb run NB args` parses, through the real command line's parser; or its exception."
    from mlops_wb.cli import load_commands
    from mlops_wb.cli.pipelines import parse_parameters

    cmd = load_commands("run").get_command(None, "run")
    ctx = cmd.make_context("run", [str(nb), *args])
    p = ctx.params
    return parse_parameters(p["parameter"], p["parameters_file"], raw=p["parameter_raw"], yaml_texts=p["parameters_yaml"])


@SETTINGS
@given(pairs=st.lists(st.tuples(IDENT, st.text(max_size=10)), max_size=3))
def test_dash_p_reads_values_as_papermill_does(notebooks, pairs):
    args = [a for n, v in pairs for a in ("-p", n, v)]
    theirs = papermill_cli_parameters(notebooks["free"], args, notebooks["dir"] / "p.ipynb")
    ours = our_cli_parameters(notebooks["free"], args)
    assert same(ours, theirs), (pairs, ours, theirs)


YAML_DOCS = st.one_of(
    st.dictionaries(IDENT, st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                                        | st.text(max_size=8), lambda k: st.lists(k, max_size=3), max_leaves=5),
                    max_size=4).map(yaml.safe_dump),
    st.text(max_size=30),
    st.sampled_from(["", "~", "- 1\n- 2", "a: 2024-01-02\nb: 12:30", "a: .nan\nb: .inf", "x: !!python/object/apply:os.system"
                     " ['true']", "a: !!binary aGk=", "a: [1,", "{a: 1, a: 2}", "a: &x 1\nb: *x"]))


@SETTINGS
@given(doc=YAML_DOCS)
def test_parameters_file_is_read_as_papermill_reads_it(notebooks, doc):
    f = notebooks["dir"] / "params.yaml"
    f.write_text(doc, encoding="utf-8")
    try:
        ours = our_cli_parameters(notebooks["free"], ["-f", str(f)])
    except MlopsWbError:
        return
    theirs = papermill_cli_parameters(notebooks["free"], ["-f", str(f)], notebooks["dir"] / "f.ipynb")
    assert same(ours, theirs), (doc, ours, theirs)


@SETTINGS
@given(params=st.dictionaries(IDENT, st.recursive(st.none() | st.booleans() | st.integers() | st.floats()
                                                  | st.text(max_size=8) | st.just("${up.value}"),
                                                  lambda k: st.lists(k, max_size=3) | st.dictionaries(IDENT, k, max_size=2),
                                                  max_leaves=6), max_size=4))
def test_pipeline_spec_parameters_reach_the_notebook_as_papermill_injects_them(notebooks, params):
    from papermill.iorw import read_yaml_file

    from mlops_wb.pipelines.runner import prepare_run
    from mlops_wb.pipelines.specs import load_spec, resolve_parameters

    spec = notebooks["dir"] / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "h", "steps": {"a": {"notebook": str(notebooks["free"]),
                                                                 "parameters": params}}}), encoding="utf-8")
    try:
        step = load_spec(spec).steps[0]
        plan = prepare_run(step.notebook, parameters=resolve_parameters(step.parameters, {}, step="a"))
    except MlopsWbError:
        return
    theirs = read_yaml_file(str(spec))["steps"]["a"]["parameters"]  # papermill's reading of the same YAML
    assert cells(plan.parameterized()) == cells(papermill_injects(notebooks["free"], theirs))
