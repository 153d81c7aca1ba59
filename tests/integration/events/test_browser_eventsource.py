"""A real browser: headless Chromium gets a stream ticket with fetch (bearer header), opens an
EventSource with it, posts a command, and receives its completion; the same ticket is refused
for another tenant, and a ticket past its expiry is refused."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from tests.support.api import ADMIN_TOKEN, new_tenant
from tests.support.server import ServerProcess
from tests.support.tickets import forged, ticket_key

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Runs in the page, as the README's browser example does: the long-lived token stays in a
# header; only the ticket goes into the EventSource URL.
RECEIVE = """
async ({tenant, token}) => {
  const minted = await fetch("/events/stream-tickets", {
    method: "POST", headers: {"Authorization": `Bearer ${token}`, "x-tenant-id": tenant},
  });
  const {ticket, expiresAt} = await minted.json();
  const params = new URLSearchParams({tenantId: tenant, access_token: ticket});
  const source = new EventSource(`/events/stream?${params}`);
  await new Promise((resolve, reject) => {
    source.onopen = resolve;
    source.onerror = () => reject(new Error("stream failed"));
  });
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
  return {minted: minted.status, ticket, expiresAt, accepted, event};
}
"""

# A refused EventSource ends in the CLOSED state (2) without opening; fetch shows why.
REFUSED = """
async ({tenant, ticket}) => {
  const url = `/events/stream?${new URLSearchParams({tenantId: tenant, access_token: ticket})}`;
  const state = await new Promise((resolve) => {
    const source = new EventSource(url);
    source.onopen = () => { source.close(); resolve("open"); };
    source.onerror = () => resolve(source.readyState);
  });
  const response = await fetch(url);
  return {state, status: response.status, body: await response.json()};
}
"""


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium; .ci/run installs it)")
async def test_browser_opens_the_stream_with_a_ticket_and_receives_its_command(
    live_server: ServerProcess, database_url: str
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
            async with asyncio.timeout(60):
                result = await page.evaluate(RECEIVE, {"tenant": tenant, "token": ADMIN_TOKEN})
                expired = forged(await ticket_key(database_url), tenant=tenant, expires_in=-1)
                foreign = await page.evaluate(REFUSED, {"tenant": new_tenant(), "ticket": result["ticket"]})
                late = await page.evaluate(REFUSED, {"tenant": tenant, "ticket": expired})
        finally:
            await browser.close()

    assert result["minted"] == 201
    assert ADMIN_TOKEN not in result["ticket"]
    assert result["accepted"]["status"] == "PENDING"
    assert result["event"]["data"]["correlationId"] == result["accepted"]["correlationId"]
    assert result["event"]["data"]["tenantId"] == tenant
    assert result["event"]["id"] == str(result["event"]["data"]["id"])
    assert (foreign["state"], foreign["status"], foreign["body"]["code"]) == (2, 403, "TENANT_FORBIDDEN")
    assert (late["state"], late["status"], late["body"]["code"]) == (2, 401, "UNAUTHORIZED")
