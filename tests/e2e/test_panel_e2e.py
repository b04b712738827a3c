"""The admin panels of the real deployment (see `conftest.py`), driven in Chromium: a
governed setting changed on the response network's panel arrives, after one cycle of its
settings stream, on the request network's panel with its new version."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_deployment import Deployment

from tests.panel.browser_support import chromium, sign_in, watch

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

KEY = "retention.task_history_days"  # no other test reads it
ROW = "#setting-retention-task_history_days"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with chromium() as launched:
        yield launched


def test_a_setting_changed_on_the_response_panel_arrives_on_the_request_panel(
    deployment: Deployment, browser
) -> None:
    d = deployment
    context = browser.new_context()
    page = context.new_page()
    seen = watch(page)
    try:
        sign_in(page, d.response_api_url, "root", d.passwords["root"])
        page.goto(f"{d.response_api_url}/admin/settings")
        row = page.locator(ROW)
        row.locator('input[name="value"]').fill("21")
        with page.expect_navigation():
            row.locator("button:has-text('Save')").click()
        assert page.locator(".flash-ok").inner_text() == f"{KEY} changed"
        assert row.locator("td.value").inner_text() == "21"

        exported = d.run_task("response", "response.settings_exporter")
        assert [b["stream"] for b in exported["batches"]] == ["settings"], exported
        d.carry(d.response.outbox, d.request.inbox)
        files = d.run_task("request", "request.settings_importer")["files"]
        assert [f["status"] for f in files] == ["imported"], files

        sign_in(page, d.api_url, "root", d.passwords["root"])
        page.goto(f"{d.api_url}/admin/settings")
        arrived = page.locator("tr", has=page.locator(f"text={KEY}")).inner_text()
        assert "21" in arrived and "governed" in arrived, arrived
        seen.assert_clean()
    finally:
        context.close()
        d.cli("response", "settings", "set", KEY, "null", env=d.response.env)  # the default
