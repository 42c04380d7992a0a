"""Generated site-code pipelines (issue 15): GitHub's and GitLab's files pass the schemas check-jsonschema
ships, all three run the same five `pressfleet pipeline` steps in order, and the load test's verdict."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pressfleet.pipelines import generate, loadtest
from pressfleet.validate import InvalidInput

pytestmark = pytest.mark.unit

SPEC = generate.PipelineSpec(production_site="shop", staging_site="shop_staging",
                             staging_domain="staging.shop.example.com", repo="git@git.example.com:team/theme.git",
                             slug="theme")
SCHEMAS = {"github": "vendor.github-workflows", "gitlab": "vendor.gitlab-ci"}


def _validate(kind: str, path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", SCHEMAS[kind], str(path)],
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_the_generated_file_passes_its_published_schema_and_a_broken_one_does_not(kind, tmp_path):
    name, text = generate.render(SPEC, kind)
    path = tmp_path / name.replace("/", "_")
    path.write_text(text)
    done = _validate(kind, path)
    assert done.returncode == 0, done.stdout + done.stderr
    data = yaml.safe_load(text)
    if kind == "github":
        data["jobs"]["staging"]["needs"] = 3  # `needs` takes a job name or a list of them
    else:
        data["test"]["when"] = "sometimes"  # not one of the values `when` takes
    path.write_text(yaml.safe_dump(data))
    assert _validate(kind, path).returncode != 0


def _commands(kind: str, text: str) -> list[str]:
    if kind == "github":
        jobs = yaml.safe_load(text)["jobs"]
        return [s["run"] for job in ("test", "staging", "production") for s in jobs[job]["steps"]
                if s.get("run", "").startswith("pressfleet pipeline")]
    if kind == "gitlab":
        data = yaml.safe_load(text)
        return [c for job in ("test", "staging", "production") for c in data[job]["script"]
                if c.startswith("pressfleet pipeline")]
    import json
    import re

    return [json.loads(m).removeprefix(". .pf/bin/activate && ") for m in re.findall(r'^\s*sh ("(?:[^"\\]|\\.)*")$', text, re.M)
            if "pressfleet pipeline" in m]


@pytest.mark.parametrize("kind", ["github", "gitlab", "jenkins"])
def test_every_pipeline_runs_the_same_five_steps_in_order(kind):
    _, text = generate.render(SPEC, kind)
    commit = generate.COMMIT[kind]
    got = _commands(kind, text)
    assert got == [c for _, _, c in generate.steps(SPEC, kind)]
    assert [c.split()[2] for c in got] == ["test", "deploy", "check", "load", "deploy"]
    assert f"--site shop_staging --repo git@git.example.com:team/theme.git --ref \"{commit}\" --slug theme" in got[1]
    assert "--site shop " in got[4] and "--max-regression 0.2" in got[3]
    assert "PREFECT_API_KEY" in text  # named for the CI to supply; never a value here


def test_bad_pipeline_settings_are_refused():
    for kw in [{"staging_site": "shop"}, {"repo": "ext::sh"}, {"staging_domain": "bad_domain"},
               {"load_seconds": 0}, {"max_regression": 0}, {"pressfleet_pip": "x; curl evil"}]:
        with pytest.raises(InvalidInput):
            generate.PipelineSpec(**{**SPEC.__dict__, **kw})
    with pytest.raises(InvalidInput, match="no pipeline for"):
        generate.render(SPEC, "circleci")


def test_the_load_verdict_allows_twenty_percent_and_no_more():
    assert loadtest.verdict(119.0, 100.0, 0.2)[0] is True
    assert loadtest.verdict(121.0, 100.0, 0.2)[0] is False
    ok, why = loadtest.verdict(50.0, None, 0.2)
    assert ok and "no baseline" in why


@given(st.lists(st.floats(0, 1e5, allow_nan=False), min_size=1, max_size=200), st.floats(1, 100))
def test_a_percentile_is_one_of_the_values_and_grows_with_q(values, q):
    p = loadtest.percentile(values, q)
    assert p in values and p <= loadtest.percentile(values, 100) == max(values)
    assert loadtest.percentile(values, q / 2) <= p
