"""`pressfleet ci generate` writes a site-code pipeline for GitHub Actions, GitLab CI or Jenkins;
`pressfleet pipeline ...` are its steps (test, deploy, check, load), which run the same on a CI runner and in a
terminal. A runner needs only the Prefect API (PREFECT_API_URL, PREFECT_API_KEY): deploys go through the
deploy-site-code deployment, whose worker holds the SSH keys."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pressfleet.cli.common import fail as _fail
from pressfleet.cli.common import load_site

ci_app = typer.Typer(help="CI pipelines for a site's plugin or theme repository.", no_args_is_help=True)
pipeline_app = typer.Typer(help="The steps a generated pipeline runs (also by hand).", no_args_is_help=True)

DEPLOYMENT = "deploy-site-code/deploy-site-code"
RESOLVE_HELP = "Connect to this address with the URL's name (as curl --resolve); env PRESSFLEET_RESOLVE."


def register(app: typer.Typer) -> None:
    app.add_typer(ci_app, name="ci")
    app.add_typer(pipeline_app, name="pipeline")


def baseline_variable(site: str) -> str:
    return f"pressfleet-p95-{site.replace('_', '-')}"


@ci_app.command("generate")
def generate(site: str = typer.Argument(..., help="The production site."),
             kind: str = typer.Option(..., "--for", help="github, gitlab or jenkins."),
             staging: str = typer.Option(..., "--staging", help="The staging site deployed and tested first."),
             repo: str = typer.Option(..., "--repo", help="The repository's address as the worker fetches it."),
             slug: Optional[str] = typer.Option(None, "--slug", help="Plugin or theme folder name."),
             branch: str = typer.Option("main", "--branch"),
             pressfleet_pip: str = typer.Option("pressfleet", "--pip", help="What the runner pip-installs."),
             out: Path = typer.Option(Path("."), "--out", help="The repository's folder (the file goes in its place)."),
             ) -> None:
    """Write the pipeline file into OUT at the place the CI reads it."""
    from pressfleet.pipelines.generate import PipelineSpec, render
    from pressfleet.validate import InvalidInput

    prod, stage = load_site(site).config(), load_site(staging).config()
    try:
        spec = PipelineSpec(production_site=prod.name, staging_site=stage.name, staging_domain=stage.domain,
                            repo=repo, slug=slug, branch=branch, pressfleet_pip=pressfleet_pip)
        path, text = render(spec, kind)
    except InvalidInput as exc:
        _fail(str(exc))
    target = out / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    typer.echo(f"wrote {target}: test, staging ({stage.domain}), production ({prod.domain})")


@pipeline_app.command("test")
def test_step(folder: Path = typer.Option(Path("."), "--dir", help="The repository's folder.")) -> None:
    """The repository's PHPUnit tests (phpunit.xml or phpunit.xml.dist); none: says so and passes."""
    import shutil
    import subprocess

    config = next((folder / n for n in ("phpunit.xml", "phpunit.xml.dist") if (folder / n).is_file()), None)
    if config is None:
        typer.echo("no phpunit.xml or phpunit.xml.dist: no PHP tests to run")
        return
    if shutil.which("phpunit") is None:
        _fail("phpunit is not installed (Debian: apt-get install phpunit)")
    done = subprocess.run(["phpunit", "--configuration", str(config.name)], cwd=folder, check=False)
    if done.returncode != 0:
        _fail(f"PHPUnit failed (exit {done.returncode})")


@pipeline_app.command("deploy")
def deploy_step(site: str = typer.Option(..., "--site"), repo: str = typer.Option(..., "--repo"),
                ref: str = typer.Option(..., "--ref"), slug: Optional[str] = typer.Option(None, "--slug"),
                timeout: int = typer.Option(1800, "--timeout", help="Seconds to wait for the deploy.")) -> None:
    """Run the deploy-site-code deployment for SITE at REF through the Prefect API and wait for it."""
    from prefect.deployments import run_deployment

    from pressfleet import validate

    try:
        params = {"site": validate.site_name(site), "repo": validate.git_repo(repo), "ref": validate.git_ref(ref)}
        if slug:
            params["slug"] = validate.component_slug(slug)
    except validate.InvalidInput as exc:
        _fail(str(exc))
    try:
        run = run_deployment(DEPLOYMENT, parameters=params, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - one line for the CI log
        _fail(f"could not start {DEPLOYMENT}: {exc}")
    state = run.state
    if state is None or not state.is_completed():
        _fail(f"deploy of {ref} to {site} ended {state.name if state else 'unknown'}: "
              f"{(state.message or '') if state else ''} (flow run {run.id})")
    typer.echo(f"{site}: {ref} deployed (flow run {run.id})")


@pipeline_app.command("check")
def check_step(url: str = typer.Option(..., "--url"),
               resolve: Optional[str] = typer.Option(None, "--resolve", envvar="PRESSFLEET_RESOLVE", help=RESOLVE_HELP),
               insecure: bool = typer.Option(False, "--insecure", envvar="PRESSFLEET_INSECURE",
                                             help="Accept a self-signed certificate.")) -> None:
    """URL answers 200 over HTTPS with no PHP error in the page."""
    from pressfleet.pipelines import loadtest
    from pressfleet.validate import InvalidInput, url as valid_url

    try:
        valid_url(url)
        r = loadtest.fetch(url, resolve=resolve, insecure=insecure)
    except InvalidInput as exc:
        _fail(str(exc))
    except Exception as exc:  # noqa: BLE001
        _fail(f"{url} did not answer: {exc}")
    found = [e for e in loadtest.PHP_ERRORS if e in r.text]
    if r.status_code != 200 or found:
        _fail(f"{url} answered {r.status_code}" + (f" with a PHP error ({found[0]!r})" if found else ""))
    typer.echo(f"{url}: 200, {len(r.content)} bytes, no PHP error")


@pipeline_app.command("load")
def load_step(url: str = typer.Option(..., "--url"), seconds: float = typer.Option(10, "--seconds"),
              concurrency: int = typer.Option(4, "--concurrency"),
              baseline: str = typer.Option(..., "--baseline", help="Site name: its last passing p95 is kept in a Prefect Variable."),
              max_regression: float = typer.Option(0.20, "--max-regression"),
              resolve: Optional[str] = typer.Option(None, "--resolve", envvar="PRESSFLEET_RESOLVE", help=RESOLVE_HELP),
              insecure: bool = typer.Option(False, "--insecure", envvar="PRESSFLEET_INSECURE")) -> None:
    """A short load test; fails when p95 is more than MAX_REGRESSION worse than the last passing run's (which it
    then keeps) or when a request failed."""
    from prefect.variables import Variable

    from pressfleet.pipelines import loadtest
    from pressfleet.validate import InvalidInput, site_name, url as valid_url

    try:
        valid_url(url)
        name = baseline_variable(site_name(baseline))
    except InvalidInput as exc:
        _fail(str(exc))
    if not 1 <= seconds <= 300 or not 1 <= concurrency <= 64:
        _fail("load test: 1-300 seconds, 1-64 concurrent clients")
    result = loadtest.run(url, seconds=seconds, concurrency=concurrency, resolve=resolve, insecure=insecure)
    before = Variable.get(name, default=None)
    ok, why = loadtest.verdict(result.p95_ms, float(before) if before is not None else None, max_regression)
    typer.echo(f"{url}: {result.requests} requests in {result.seconds} s ({result.rps}/s), {result.errors} failed, "
               f"p50 {result.p50_ms} ms; {why}")
    if result.errors:
        _fail(f"{result.errors} of {result.requests} requests failed")
    if not ok:
        _fail("the release is slower than the last one beyond the limit")
    Variable.set(name, result.p95_ms, overwrite=True)
