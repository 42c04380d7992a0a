"""The deploy, rollback, kube, ci and image commands refuse bad input in one sentence, exit non-zero and reach
no host (the site's server is TEST-NET-3's); kube render and ci generate write valid files for a saved site."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

pytestmark = pytest.mark.unit


def _key() -> str:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()


@pytest.fixture
def saved_sites(prefect_harness, monkeypatch, tmp_path):
    from blocks.server import Server
    from blocks.site import WordPressSite

    monkeypatch.setenv("PRESSFLEET_STATE", str(tmp_path))
    Server(address="203.0.113.41", private_key=_key()).save("code-cli-web", overwrite=True)
    for name, domain in (("codecli", "codecli.example.test"), ("codestage", "stage.codecli.example.test")):
        WordPressSite(name=name, domain=domain, admin_email="a@example.test",
                      release_url="http://203.0.113.9/wordpress-6.1.9.tar.gz", release_sha256="0" * 64,
                      server=Server.load("code-cli-web")).save(f"site-{name}", overwrite=True)
    return tmp_path


def test_site_code_commands_refuse_bad_input_and_reach_no_host(saved_sites, tmp_path):
    from typer.testing import CliRunner

    from pressfleet.cli.main import app

    runner = CliRunner()
    cases = [
        (["deploy", "codecli", "--repo", "ext::sh -c id", "--ref", "main"], "is not a git repository"),
        (["deploy", "codecli", "--repo", "/srv/x", "--ref", "--upload-pack=id"], "not a git branch"),
        (["deploy", "codecli", "--repo", "/srv/x", "--ref", "main", "--slug", "Bad Slug"], "not a plugin or theme"),
        (["deploy", "nosuch.example.test", "--repo", "/srv/x"], "nosuch.example.test"),
        (["rollback", "codecli", "--to", "yesterday"], "is not a release id"),
        (["kube", "render", "codecli", "--out", str(tmp_path / "k"), "--env", "prod"], "use staging or production"),
        (["kube", "render", "codecli", "--out", str(tmp_path / "k"), "--external-db", "db.example.com"], "IPv4"),
        (["ci", "generate", "codecli", "--for", "circleci", "--staging", "codestage", "--repo", "/srv/x"], "no pipeline for"),
        (["ci", "generate", "codecli", "--for", "github", "--staging", "codecli", "--repo", "/srv/x"], "another site"),
        (["image", "build"], "give --site SITE"),
        (["pipeline", "check", "--url", "https://x/;id"], "not a plain http(s) URL"),
        (["pipeline", "deploy", "--site", "Bad", "--repo", "/srv/x", "--ref", "main"], "Bad"),
    ]
    for args, says in cases:
        r = runner.invoke(app, args)
        assert r.exit_code == 1, (args, r.output)
        assert says in r.output, (args, r.output)
        assert "Traceback" not in r.output
    # a repository that cannot be read fails the flow before the host is touched (its log shows the flow's failure)
    r = runner.invoke(app, ["deploy", "codecli", "--repo", str(tmp_path / "none"), "--ref", "main"])
    assert r.exit_code == 1 and "deploy failed: could not fetch" in r.output


def test_kube_render_and_ci_generate_write_valid_files_for_a_saved_site(saved_sites, tmp_path):
    from typer.testing import CliRunner

    from pressfleet.cli.main import app

    runner = CliRunner()
    r = runner.invoke(app, ["kube", "render", "codecli", "--out", str(tmp_path / "k8s"), "--env", "staging"])
    assert r.exit_code == 0, r.output
    assert "namespace pressfleet-codecli" in r.output and "valid for Kubernetes 1.30" in r.output
    site = yaml.safe_load((tmp_path / "k8s" / "site" / "kustomization.yaml").read_text())
    assert site["images"][0]["newTag"] == "6.1.9" and site["bases"] == ["../overlays/staging"]
    r = runner.invoke(app, ["ci", "generate", "codecli", "--for", "gitlab", "--staging", "codestage",
                            "--repo", "git@git.example.test:team/theme.git", "--out", str(tmp_path / "repo")])
    assert r.exit_code == 0, r.output
    path = tmp_path / "repo" / ".gitlab-ci.yml"
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.gitlab-ci", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert "--site codestage" in path.read_text() and "https://stage.codecli.example.test/" in path.read_text()
