"""The lab's stack template is keyed by its package list: a changed list is a new template, never a stale one."""

from __future__ import annotations

import pytest

from pressfleet.lab import hosts as lab

pytestmark = pytest.mark.unit


def test_the_stack_template_id_follows_the_package_list_and_the_base_template(monkeypatch):
    base = ["nginx", "mariadb-server", "php8.2-fpm"]
    assert lab.stack_template_id(base) == lab.stack_template_id(list(reversed(base)) + ["nginx"])  # a set
    assert lab.stack_template_id(base) != lab.stack_template_id([*base, "redis-server"])
    assert lab.stack_template_path(base).name == f"stack-{lab.stack_template_id(base)}"
    assert lab.stack_template_path(base).parent == lab.template_path().parent  # cached beside the base template
    before = lab.stack_template_id(base)
    monkeypatch.setattr(lab, "TEMPLATE_RECIPE_VERSION", lab.TEMPLATE_RECIPE_VERSION + "-next")  # a new base template
    assert lab.stack_template_id(base) != before


@pytest.mark.parametrize("bad", [[], ["nginx", "a;rm -rf /"], ["-o"], ["Nginx"], ["nginx pkg"]])
def test_a_package_list_that_is_not_debian_names_is_refused(bad):
    with pytest.raises(lab.LabError, match="not Debian package names"):
        lab.stack_template_id(bad)
