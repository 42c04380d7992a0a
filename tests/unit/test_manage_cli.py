"""`pressfleet bulk` and `pressfleet update`: input refused with one sentence before any site is looked up or
contacted (issue 11)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.unit


def _run(*args: str):
    from pressfleet.cli.main import app

    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("args, says", [
    (["bulk", "frobnicate", "--select", "all"], "unknown operation 'frobnicate': choose from backup, restore-test"),
    (["bulk", "rotate-secrets"], "--select the sites"),
    (["bulk", "admin-user", "--select", "all", "--login", "Bad Login"], "admin-user:"),
    (["update"], "name the sites to update, or use --tag, --server, --template or --all"),
])
def test_bad_input_is_refused_in_one_sentence_before_anything_runs(args, says):
    result = _run(*args)
    assert result.exit_code != 0
    assert says in result.output, result.output
    assert "Traceback" not in result.output


def test_rotate_secrets_is_an_operation_the_command_offers():
    result = _run("bulk", "--help")
    assert result.exit_code == 0 and "rotate-secrets" in result.output, result.output
