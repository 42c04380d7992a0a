"""The SiteTemplate block: a named set of site options (PHP, caches, hardening), the plugins and themes to install
from the release catalogue, administrators, an update policy, and tags, shared by every site made from it."""

from __future__ import annotations

from typing import Any, Optional

from prefect.blocks.core import Block
from pydantic import BaseModel, Field, field_validator, model_validator

from pressfleet import validate
from pressfleet.updates.policy import UpdatePolicy

# What a template may not set: who the site is, where it runs, its secrets, and the template bookkeeping itself.
NOT_TEMPLATE_KEYS = frozenset({"name", "domain", "aliases", "admin_email", "admin_user", "title", "server",
                               "certificate_pem", "certificate_key", "mail_relay", "template", "overrides", "tags",
                               "release_url", "release_sha256", "update_core"})
_SLUG = r"^[a-z0-9][a-z0-9_-]{0,99}$"


class TemplateAdmin(BaseModel):
    """An administrator every site made from the template has."""

    login: str = Field(..., pattern=r"^[a-z][a-z0-9_.-]{2,59}$")
    email: str = Field(..., pattern=r"^[^@\s]{1,64}@[a-z0-9.-]{1,253}$")


class SiteTemplate(Block):
    """Options every site made from this template gets, unless the site overrides them.

    A site names its template (`template`) and the options it sets itself (`overrides`); provisioning applies
    the template's options to every other field, installs its plugins and themes from the release catalogue
    (plugins activated) and adds its tags. Change the template, then `pressfleet bulk reprovision --select
    template:NAME` brings every site made from it in line."""

    _block_type_name = "Site Template"
    _block_type_slug = "site-template"
    _description = "Shared site options, plugins and themes from the catalogue, and tags."

    options: dict[str, Any] = Field(default_factory=dict, title="Site options",
                                    description="Any option of the WordPress Site block, e.g. page_cache_ttl_s: 600.")
    plugins: list[str] = Field(default_factory=list, title="Plugins", description="Slugs, installed from the catalogue and activated.")
    themes: list[str] = Field(default_factory=list, title="Themes", description="Slugs, installed from the catalogue.")
    tags: list[str] = Field(default_factory=list, title="Tags")
    admins: list[TemplateAdmin] = Field(
        default_factory=list, title="Administrators",
        description="Added to every site made from it (WordPress mails each the link to set a password); "
                    "never removed by provisioning: `pressfleet bulk admin-user --remove` does that.")
    update_policy: Optional[UpdatePolicy] = Field(
        None, title="Update policy", description="For every site made from it that does not set its own "
                                                 "(auto, approval or never per security, minor and major release).")
    catalog: Optional[str] = Field(None, title="Release Catalog block",
                                   description="Where plugins and themes come from; empty: pressfleet-catalog.")

    @field_validator("plugins", "themes")
    @classmethod
    def _check_slugs(cls, value: list[str]) -> list[str]:
        import re

        for slug in value:
            if not re.match(_SLUG, slug):
                raise ValueError(f"{slug!r} is not a plugin or theme slug (a-z, 0-9, '_', '-')")
        return list(dict.fromkeys(value))

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, value: list[str]) -> list[str]:
        from pressfleet.fleet.selection import tag

        return list(dict.fromkeys(tag(t) for t in value))

    @field_validator("catalog")
    @classmethod
    def _check_catalog(cls, value: Optional[str]) -> Optional[str]:
        return validate.block_name(value, "Release Catalog block") if value else None

    @model_validator(mode="after")
    def _check_options(self) -> "SiteTemplate":
        from blocks.site import WordPressSite

        bad = sorted(set(self.options) - (set(WordPressSite.model_fields) - NOT_TEMPLATE_KEYS))
        if bad:
            raise ValueError(f"a template cannot set {', '.join(bad)}: it sets site options only "
                             f"(not a site's identity, server, secrets or release)")
        WordPressSite(name="template_check", domain="template-check.example.com", admin_email="a@example.com",
                      **self.options)  # every value is checked as the site block checks it
        return self


def with_template(site):
    """SITE as provisioning applies it: its template's options on every field it does not override, the
    template's tags added. A site without a template is returned as it is."""
    if not getattr(site, "template", None):
        return site
    template = load_template(site.template)
    update = {k: v for k, v in template.options.items() if k not in set(site.overrides)}
    if template.update_policy is not None and "update_policy" not in site.overrides:
        update["update_policy"] = template.update_policy
    merged = site.model_copy(update={**update, "tags": list(dict.fromkeys([*site.tags, *template.tags]))})
    return type(site)(**{name: getattr(merged, name) for name in type(site).model_fields})  # checked as a whole


def load_template(name: str) -> SiteTemplate:
    try:
        return SiteTemplate.load(name)
    except ValueError:
        raise validate.InvalidInput(f"no Site Template block {name!r}: save it first, or clear the site's template") from None
