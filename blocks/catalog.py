"""The ReleaseCatalog block: which core, plugin and theme releases pressfleet may install (with their sha256)."""

from __future__ import annotations

from typing import Literal, Optional

from prefect.blocks.core import Block
from pydantic import BaseModel, Field, field_validator, model_validator

from pressfleet.updates import catalog as cat

DEFAULT_CATALOG_BLOCK = "pressfleet-catalog"


class CatalogEntry(BaseModel):
    """One release: a row of the block's form."""

    kind: Literal["core", "plugin", "theme"] = Field(..., title="Kind")
    slug: str = Field("wordpress", title="Slug", description="The plugin's or theme's folder name; 'wordpress' for core.")
    version: str = Field(..., title="Version")
    url: str = Field(..., title="Archive URL", description="core: a .tar.gz; plugins and themes: a .zip as wordpress.org ships them.")
    sha256: str = Field(..., title="sha256", description="The archive's sha256: a host installs nothing it cannot verify.")
    security: bool = Field(False, title="Security release", description="Installed by the automatic policy without approval.")

    @model_validator(mode="after")
    def _check(self) -> "CatalogEntry":
        self.release()
        return self

    def release(self) -> cat.Release:
        return cat.release(self.model_dump())


class ReleaseCatalog(Block):
    """The releases pressfleet may install: entries edited here, a catalogue file, or wordpress.org's API.

    `pressfleet updates` compares each site with it and `update-sites` installs its newest release of each
    component a site has. Entries without a sha256 are refused when the block is saved."""

    _block_type_name = "Release Catalog"
    _block_type_slug = "release-catalog"
    _description = "Core, plugin and theme releases (version, archive URL, sha256) that updates may install."

    source: Literal["entries", "file", "wordpress.org"] = Field(
        "entries", title="Source",
        description="entries: the list below; file: a JSON or YAML catalogue file on the control machine; "
                    "wordpress.org: its update API (internet-connected control machines only).")
    entries: list[CatalogEntry] = Field(default_factory=list, title="Releases")
    file: Optional[str] = Field(None, title="Catalogue file", description="For source 'file': its path.")
    plugins: list[str] = Field(default_factory=list, title="Plugins to ask wordpress.org about")
    themes: list[str] = Field(default_factory=list, title="Themes to ask wordpress.org about")

    @field_validator("file")
    @classmethod
    def _check_file(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (not value.startswith("/") or "\0" in value):
            raise ValueError("the catalogue file must be an absolute path")
        return value

    @model_validator(mode="after")
    def _check_source(self) -> "ReleaseCatalog":
        if self.source == "file" and not self.file:
            raise ValueError("source 'file' needs the catalogue file's path")
        return self

    def catalogue(self) -> cat.Catalogue:
        """The releases, read now (a file is read again on every run; wordpress.org is asked again)."""
        if self.source == "file":
            return cat.load_file(self.file)
        if self.source == "wordpress.org":
            return cat.from_wordpress_org(self.plugins, self.themes)
        return cat.Catalogue(tuple(e.release() for e in self.entries), source="entries")


def load_catalog(block: Optional[ReleaseCatalog] = None) -> cat.Catalogue:
    """BLOCK's catalogue, or the saved `pressfleet-catalog`'s; one sentence when there is none."""
    if block is None:
        try:
            block = ReleaseCatalog.load(DEFAULT_CATALOG_BLOCK)
        except ValueError:
            raise cat.CatalogError(
                f"no release catalogue: save a Release Catalog block named {DEFAULT_CATALOG_BLOCK!r} "
                "(entries, a catalogue file or wordpress.org) or pass one") from None
    return block.catalogue()
