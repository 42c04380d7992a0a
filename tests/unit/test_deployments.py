"""deployments/ beside prefect.yaml (issue 9, item 22): every flow a person runs has a deployment, every
scheduled deployment's schedule comes from deployments/, and the environment files merge as documented."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from pressfleet.stack import deployments as dep
from pressfleet.paths import ROOT
from pressfleet.validate import InvalidInput

pytestmark = pytest.mark.unit

PREFECT_FILE = ROOT / "prefect.yaml"


def flows_in_flows_folder() -> set[str]:
    """`path:function` of every @flow-decorated function in flows/*.py."""
    found = set()
    for path in sorted((ROOT / "flows").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                for d in node.decorator_list:
                    target = d.func if isinstance(d, ast.Call) else d
                    if getattr(target, "id", None) == "flow" or getattr(target, "attr", None) == "flow":
                        found.add(f"flows/{path.name}:{node.name}")
    return found


def test_every_flow_a_person_runs_has_a_deployment():
    project = yaml.safe_load(PREFECT_FILE.read_text())
    entrypoints = {d["entrypoint"] for d in project["deployments"]}
    flows = flows_in_flows_folder()
    assert len(flows) >= 13
    assert flows - entrypoints == set(), "flows without a deployment in prefect.yaml"
    assert entrypoints - flows == set(), "deployments of flows that do not exist"


def test_the_deployments_folder_holds_schedules_environments_and_the_pool_template():
    folder = ROOT / "deployments"
    assert {"lab", "production"} <= set(dep.environments(folder))
    template = (folder / "work-pool.json").read_text()
    assert '"job_configuration"' in template and '"variables"' in template
    schedules = yaml.safe_load((folder / "schedules.yaml").read_text())["schedules"]
    project = yaml.safe_load(PREFECT_FILE.read_text())
    assert all("schedules" not in d for d in project["deployments"]), "schedules live in deployments/ alone"
    for env in ("lab", "production"):
        composed = {d["name"]: d for d in dep.compose_files(PREFECT_FILE, env)["deployments"]}
        overrides = yaml.safe_load((folder / f"{env}.yaml").read_text())["deployments"]
        for name, d in composed.items():
            want = overrides.get(name, {}).get("schedules", schedules.get(name, []))
            assert d["schedules"] == want, (env, name)
            for key, value in overrides.get(name, {}).get("parameters", {}).items():
                assert d["parameters"][key] == value
    assert composed["ship-binlogs"]["schedules"] != schedules["ship-binlogs"]  # production replaces it


BASE = {"name": "p", "deployments": [
    {"name": "a", "entrypoint": "flows/a.py:a", "parameters": {"x": 1, "y": 2}, "tags": ["t"],
     "work_pool": {"name": "pool", "job_variables": {"env": {"A": "1"}}}},
    {"name": "b", "entrypoint": "flows/b.py:b"},
]}


def test_compose_merges_parameters_replaces_schedules_and_leaves_its_inputs_alone():
    base = yaml.safe_load(yaml.safe_dump(BASE))
    out = dep.compose(base, {"schedules": {"a": [{"cron": "0 1 * * *"}], "b": [{"interval": 60}]}},
                      {"deployments": {"a": {"parameters": {"y": 3}, "schedules": [{"cron": "5 1 * * *"}],
                                             "job_variables": {"stream_output": False}, "tags": ["prod", "t"]}}})
    a, b = out["deployments"]
    assert a["parameters"] == {"x": 1, "y": 3}
    assert a["schedules"] == [{"cron": "5 1 * * *"}] and b["schedules"] == [{"interval": 60}]
    assert a["work_pool"]["job_variables"] == {"env": {"A": "1"}, "stream_output": False}
    assert a["tags"] == ["t", "prod"]
    assert base == BASE  # nothing changed in place


def test_yaml_anchors_are_not_shared_after_compose():
    text = """
definitions: {pool: &pool {name: pool, job_variables: {}}}
deployments:
  - {name: a, entrypoint: x.py:a, work_pool: *pool}
  - {name: b, entrypoint: x.py:b, work_pool: *pool}
"""
    out = dep.compose(yaml.safe_load(text), {}, {"deployments": {"a": {"job_variables": {"env": {"K": "v"}}}}})
    assert out["deployments"][1]["work_pool"]["job_variables"] == {}


@pytest.mark.parametrize("schedules, env, says", [
    ({"schedules": {"nope": []}}, {}, "schedules.yaml names deployment 'nope'"),
    ({}, {"deployments": {"nope": {}}}, "names deployment 'nope', which prefect.yaml does not define"),
    ({}, {"deployments": {"a": {"entrypoint": "evil.py:x"}}}, "'a' sets entrypoint"),
    ({}, {"deploymnts": {}}, "unknown key(s) deploymnts"),
])
def test_a_name_or_key_that_matches_nothing_is_refused(schedules, env, says):
    with pytest.raises(InvalidInput) as exc:
        dep.compose(BASE, schedules, env, env_name="prod")
    assert says in str(exc.value)


def test_an_unknown_environment_is_refused_with_the_ones_there_are():
    with pytest.raises(InvalidInput, match=r"no environment 'staging'.*there are: lab, production"):
        dep.compose_files(PREFECT_FILE, "staging")
    with pytest.raises(InvalidInput, match="is not a name"):
        dep.compose_files(PREFECT_FILE, "../etc/passwd")


def test_the_composed_file_is_written_for_the_owner_alone(tmp_path):
    path = dep.write(PREFECT_FILE, tmp_path / "stack", "lab")
    assert path == tmp_path / "stack" / "prefect.lab.yaml"
    assert path.stat().st_mode & 0o777 == 0o600 and (tmp_path / "stack").stat().st_mode & 0o777 == 0o700
    assert yaml.safe_load(path.read_text()) == dep.compose_files(PREFECT_FILE, "lab")


def test_stack_deploy_print_shows_the_composed_file_and_refuses_an_unknown_environment(monkeypatch):
    from typer.testing import CliRunner

    from pressfleet.cli.main import app

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # never the operator's stack
    ok = CliRunner().invoke(app, ["stack", "deploy", "--env", "production", "--print"])
    assert ok.exit_code == 0, ok.output
    assert yaml.safe_load(ok.output) == dep.compose_files(PREFECT_FILE, "production")
    bad = CliRunner().invoke(app, ["stack", "deploy", "--env", "staging", "--print"])
    assert bad.exit_code != 0 and "no environment 'staging'" in bad.output
