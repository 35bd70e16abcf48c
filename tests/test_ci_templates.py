"""The CI workflows of `mlops-wb init --ci`, run as CI would run them: the written YAML is parsed, and every `run:`
(GitHub) or `script:` (GitLab) line is executed in order in the project, with the environment the workflow sets and
only the CI variables and secrets substituted. GitHub's runs against an embedded store, GitLab's against a real
`mlflow server`."""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml

from conftest import BIN, clean_env

MLOPS_WB = str(BIN / "mlops-wb")
_EXPR = re.compile(r"\$\{\{\s*(vars|secrets)\.([A-Za-z0-9_]+)\s*\}\}")


def substitute(value: str, ci: dict[str, str]) -> str:
    "GitHub's ${{ vars.X }} and ${{ secrets.X }}: the CI system's values (empty when unset, as GitHub does)."
    return _EXPR.sub(lambda m: ci.get(m.group(2), ""), str(value))


def execute(lines: list[str], *, cwd, env: dict[str, str], log: list[str]) -> None:
    for line in lines:
        r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", line], cwd=cwd, env=env, capture_output=True,
                           text=True, timeout=1800)
        log.append(f"$ {line}\n{r.stdout}{r.stderr}")
        assert r.returncode == 0, "\n".join(log)[-12000:]


def base_env(**extra: str) -> dict[str, str]:
    env = clean_env(**extra)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # the image's Python, as setup-python or `image:` gives
    env.pop("CI", None)
    return env


def init(root, ci: str, *, name: str = "mlops_wb_model") -> None:
    "A project whose settings name who may approve (the team's one manual step), then `mlops-wb init --ci`."
    (root / "settings.ini").write_text(f"[tracking]\nexperiment = {name}\n[registry]\nmodel_name = {name}\n"
                                       "[approval]\napprovers = reviewer\n"
                                       "allow_declared_user = true\n")  # the test plays the reviewer on one machine
    r = subprocess.run([MLOPS_WB, "init", "--ci", ci], cwd=root, env=base_env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "approvers = reviewer" in (root / "settings.ini").read_text()  # init keeps the project's settings


def promote_first_version(root, env) -> None:
    "What a person does between the pipeline and the first scheduled monitor: approve and promote the candidate."
    for cmd in (["approve", "1", "-c", "gates passed, reviewed"], ["promote", "1", "-c", "first champion"]):
        r = subprocess.run([MLOPS_WB, *cmd, "-u", "reviewer"], cwd=root, env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.xdist_group("ci-github")
def test_github_workflow_runs_as_written(tmp_path):
    init(tmp_path, "github")
    wf = yaml.safe_load((tmp_path / ".github" / "workflows" / "mlops.yml").read_text())
    on = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as true
    assert set(on) == {"push", "pull_request", "schedule", "workflow_dispatch"}
    ci = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/ci-store/mlflow.db",
          "MLFLOW_TRACKING_USERNAME": "ci-user", "MLFLOW_TRACKING_PASSWORD": "ci-password"}
    env = base_env(**{k: substitute(v, ci) for k, v in wf["env"].items()})
    assert "MLOPS_WB_USER" not in env and env["MLFLOW_TRACKING_PASSWORD"] == "ci-password"  # CI acts as its login
    summary = tmp_path / "github_step_summary.md"
    env["GITHUB_STEP_SUMMARY"] = str(summary)
    log: list[str] = []
    job = wf["jobs"]["pipeline"]
    assert job["if"] == "github.event_name != 'schedule'"
    steps = [s for s in job["steps"] if "run" in s]
    assert [s["name"] for s in steps] == ["Install", "Pipeline", "Quality gates"]
    execute([substitute(s["run"], ci) for s in steps], cwd=tmp_path, env=env, log=log)
    assert "## ✅ Quality gates passed" in summary.read_text()
    assert (tmp_path / "reports" / "gates.xml").read_text().count("<testcase ") >= 6
    promote_first_version(tmp_path, env)

    job = wf["jobs"]["monitor"]
    (step,) = [s for s in job["steps"] if s.get("name") == "Monitor"]
    ci |= {"MLOPS_WB_MONITOR_BATCH": ".mlops_wb/work/ci/ingest/batch.parquet",
           "MLOPS_WB_MONITOR_REFERENCE": ".mlops_wb/work/ci/ingest/train.parquet"}
    step_env = env | {k: substitute(v, ci) for k, v in step["env"].items()}
    lines = [substitute(s["run"], ci) for s in job["steps"] if "run" in s]
    execute(lines, cwd=tmp_path, env=step_env, log=log)
    assert "mlops_wb_model: batch batch-" in log[-1] and "prediction drift: no" in log[-1], log[-1]


@pytest.mark.xdist_group("ci-gitlab")
def test_gitlab_pipeline_runs_as_written_against_a_tracking_server(tmp_path, mlflow_server):
    name = f"ci-{tmp_path.name}"  # the server is shared with other tests: an experiment and model of its own
    init(tmp_path, "gitlab", name=name)
    gl = yaml.safe_load((tmp_path / ".gitlab-ci.yml").read_text())
    ci = {"MLFLOW_TRACKING_URI": mlflow_server, "CI_PROJECT_DIR": str(tmp_path)}
    env = base_env(**{k: str(v).replace("$CI_PROJECT_DIR", str(tmp_path)) for k, v in gl["variables"].items()}, **ci)
    log: list[str] = []
    job = gl["pipeline"]
    assert job["rules"] == [{"if": '$CI_PIPELINE_SOURCE != "schedule"'}]
    assert job["artifacts"]["reports"]["junit"] == "reports/gates.xml"
    execute(["\n".join(gl["default"]["before_script"] + job["script"])], cwd=tmp_path, env=env, log=log)
    assert "Quality gates passed" in log[-1]
    promote_first_version(tmp_path, env)
    r = subprocess.run([MLOPS_WB, "monitor", "reference", ".mlops_wb/work/ci/ingest/train.parquet", "--target",
                        "target", "--model", f"models:/{name}@champion"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    env |= {"MLOPS_WB_MONITOR_BATCH": ".mlops_wb/work/ci/ingest/batch.parquet",
            "MLOPS_WB_MONITOR_REFERENCE": r.stdout.strip()}
    job = gl["monitor"]
    assert job["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule"'}]
    assert job["script"] == ['mlops-wb monitor "$MLOPS_WB_MONITOR_BATCH" --reference "$MLOPS_WB_MONITOR_REFERENCE" '
                             f'--model "models:/{name}@champion"']
    execute(["\n".join(gl["default"]["before_script"] + job["script"])], cwd=tmp_path, env=env, log=log)
    assert "prediction drift: no" in log[-1], log[-1]
    r = subprocess.run([MLOPS_WB, "monitor", "history", "--name", name, "--json"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert [row["source"] for row in json.loads(r.stdout)] == ["data", "prediction"]
