"""CI pipelines for a site's plugin or theme repository (pure): the same five steps for GitHub Actions, GitLab
CI and Jenkins. Each step is a `pressfleet pipeline` command, so a person (or a test) runs exactly what CI runs:

1. test     the repository's PHPUnit tests (phpunit, when it has a phpunit.xml or phpunit.xml.dist)
2. stage    the commit deployed to the staging site through the Prefect API (the deploy-site-code deployment)
3. check    the staging site's home page answers 200 over HTTPS with no PHP error in it
4. load     a short load test of staging; fails when its p95 is more than 20% worse than the last passing one
5. promote  the same commit deployed to the production site through the Prefect API
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, StrictUndefined

from pressfleet.validate import InvalidInput, domain, git_repo, site_name

KINDS = {"github": ".github/workflows/pressfleet.yml", "gitlab": ".gitlab-ci.yml", "jenkins": "Jenkinsfile"}
COMMIT = {"github": "${{ github.sha }}", "gitlab": "${CI_COMMIT_SHA}", "jenkins": "${GIT_COMMIT}"}


@dataclass(frozen=True)
class PipelineSpec:
    production_site: str
    staging_site: str
    staging_domain: str
    repo: str
    slug: str | None = None
    branch: str = "main"
    load_seconds: int = 10
    load_concurrency: int = 4
    max_regression: float = 0.20
    pressfleet_pip: str = "pressfleet"  # what `pip install` takes on the runner (a wheel URL, a git URL)

    def __post_init__(self) -> None:
        site_name(self.production_site)
        site_name(self.staging_site)
        domain(self.staging_domain)
        git_repo(self.repo)
        if self.production_site == self.staging_site:
            raise InvalidInput("the staging site must be another site than production")
        if not 1 <= self.load_seconds <= 300 or not 1 <= self.load_concurrency <= 64:
            raise InvalidInput("load test: 1-300 seconds, 1-64 concurrent clients")
        if not 0 < self.max_regression < 10:
            raise InvalidInput("max regression is a fraction, e.g. 0.2 for 20%")
        if any(c in self.pressfleet_pip for c in " '\"`$;\\\n"):
            raise InvalidInput(f"{self.pressfleet_pip!r}: a pip requirement without spaces or quotes")


def steps(spec: PipelineSpec, kind: str) -> list[tuple[str, str, str]]:
    """(stage, name, shell command) of each step, in order; COMMIT is the CI's own commit variable."""
    commit = COMMIT[kind]
    slug = f" --slug {spec.slug}" if spec.slug else ""
    url = f"https://{spec.staging_domain}/"
    return [
        ("test", "phpunit", "pressfleet pipeline test"),
        ("staging", "deploy to staging",
         f'pressfleet pipeline deploy --site {spec.staging_site} --repo {spec.repo} --ref "{commit}"{slug}'),
        ("staging", "integration check", f"pressfleet pipeline check --url {url}"),
        ("staging", "load test",
         f"pressfleet pipeline load --url {url} --seconds {spec.load_seconds} --concurrency {spec.load_concurrency} "
         f"--baseline {spec.staging_site} --max-regression {spec.max_regression:g}"),
        ("production", "deploy to production",
         f'pressfleet pipeline deploy --site {spec.production_site} --repo {spec.repo} --ref "{commit}"{slug}'),
    ]


def render(spec: PipelineSpec, kind: str) -> tuple[str, str]:
    """(path in the repository, text) of the pipeline for KIND (github, gitlab or jenkins)."""
    if kind not in KINDS:
        raise InvalidInput(f"no pipeline for {kind!r}: use {', '.join(KINDS)}")
    env = Environment(loader=PackageLoader("pressfleet", "templates/pipelines"), undefined=StrictUndefined,
                      keep_trailing_newline=True, autoescape=False)
    env.filters["dq"] = json.dumps  # a double-quoted string that YAML and Groovy both read (Jinja's tojson escapes & for HTML)
    text = env.get_template(f"{kind}.j2").render(spec=spec, steps=steps(spec, kind))
    return KINDS[kind], text
