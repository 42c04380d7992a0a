"""The Prefect UI of the test stack, in headless Chromium: the deployments page lists ours."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pressfleet.stack import control as stack
from pressfleet.paths import ROOT

pytestmark = [pytest.mark.ui, pytest.mark.timeout(300)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_deployments_page_lists_our_deployments(prefect_api, browser, tmp_path):
    cfg = prefect_api.cfg
    stack.deploy(cfg, ROOT / "prefect.yaml")  # host-facts, next to the test stack's pf-test-add
    wanted = ["host-facts", "pf-test-add"]

    t0 = time.monotonic()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{cfg.ui_url}/deployments", wait_until="domcontentloaded", timeout=60_000)
        # The page shows one page of deployments (the project has about 20): search for each, as a person would.
        search = page.get_by_placeholder("Search deployments").first
        search.wait_for(state="visible", timeout=60_000)
        text = ""
        for name in wanted:
            search.fill(name)
            page.get_by_text(name, exact=True).first.wait_for(state="visible", timeout=60_000)
            text += page.inner_text("body")
        shot = tmp_path / "deployments.png"
        page.screenshot(path=str(shot), full_page=True)
    finally:
        context.close()
    print(f"UI /deployments listed {wanted} in {time.monotonic() - t0:.1f} s; screenshot {shot}")

    assert shot.stat().st_size > 10_000
    for name in wanted:
        assert name in text
    assert "Deployments" in text
    assert "Ready" in text  # deployment status: the UI sees our worker polling the pool
    # the UI talks to our API on our port, not to :4200 (PREFECT_UI_API_URL)
    assert "Can't connect to Server API" not in text
