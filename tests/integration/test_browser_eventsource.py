"""A real browser: headless Chromium opens an EventSource with ?tenantId=&access_token=, posts a
command with fetch, and receives its completion."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import ADMIN_TOKEN, new_tenant
from tests.support.server import ServerProcess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Runs in the page: EventSource cannot send headers, so tenant and token travel in the query.
SCRIPT = """
async ({tenant, token}) => {
  const params = new URLSearchParams({tenantId: tenant, access_token: token});
  const source = new EventSource(`/events/stream?${params}`);
  const opened = new Promise((resolve, reject) => {
    source.onopen = resolve;
    source.onerror = () => reject(new Error("stream failed"));
  });
  await opened;
  const completion = new Promise((resolve) => {
    source.addEventListener("Contacts.Upserted.v1",
      (e) => resolve({id: e.lastEventId, data: JSON.parse(e.data)}));
  });
  const response = await fetch("/commands", {
    method: "POST",
    headers: {"Authorization": `Bearer ${token}`, "x-tenant-id": tenant, "Content-Type": "application/json"},
    body: JSON.stringify({command: "Contacts.UpsertAndLink.v1", actor: {userId: "browser"}, payload: {}}),
  });
  const accepted = await response.json();
  const event = await completion;
  source.close();
  return {accepted, event};
}
"""


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium; .ci/run installs it)")
async def test_browser_event_source_receives_the_completion_of_its_command(
    live_server: ServerProcess,
) -> None:
    from playwright.async_api import async_playwright

    tenant = new_tenant()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = await browser.new_page()
            await page.goto(f"{live_server.url}/health")
            result = await page.evaluate(SCRIPT, {"tenant": tenant, "token": ADMIN_TOKEN})
        finally:
            await browser.close()

    assert result["accepted"]["status"] == "PENDING"
    assert result["event"]["data"]["correlationId"] == result["accepted"]["correlationId"]
    assert result["event"]["data"]["tenantId"] == tenant
    assert result["event"]["id"] == str(result["event"]["data"]["id"])
