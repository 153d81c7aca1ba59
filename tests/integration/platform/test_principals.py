"""What a principal's actor id is used for (SPEC 3.1): who submitted a command, and whose
Idempotency-Key a key is; and the development mode's guard rails."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from app.config import ConfigError, Settings
from app.lib.auth import check_bind_address
from tests.support.api import ADMIN_TOKEN, USER_TOKEN, Api
from tests.support.server import ROOT

COMMAND = {"command": "Billing.Charge.v1", "actor": {"userId": "customer-42"}, "payload": {"cents": 100}}


async def test_a_command_records_who_submitted_it_beside_whom_it_acts_for(api: Api) -> None:
    editor = api.as_(token=USER_TOKEN)

    accepted = await editor.post("/commands", json=COMMAND)
    status = await api.get(f"/commands/{accepted.json()['correlationId']}")

    assert accepted.status_code == 202, accepted.text
    assert status.json()["submittedById"] == "bob"
    assert status.json()["actor"] == {"userId": "customer-42"}


async def test_an_idempotency_key_sent_by_another_actor_is_another_request(api: Api) -> None:
    key = {"Idempotency-Key": "same-key-1"}

    first = await api.post("/commands", json=COMMAND, headers=key)
    other_actor = await api.as_(token=USER_TOKEN).post("/commands", json=COMMAND, headers=key)
    same_actor = await api.post("/commands", json=COMMAND, headers=key)

    assert first.status_code == other_actor.status_code == same_actor.status_code == 202
    assert "Idempotent-Replayed" not in other_actor.headers
    assert other_actor.json()["correlationId"] != first.json()["correlationId"]
    assert same_actor.headers["Idempotent-Replayed"] == "true"
    assert same_actor.json() == first.json()


async def test_a_refused_request_takes_no_idempotency_key(api: Api, http: httpx.AsyncClient) -> None:
    """A 403 comes before the key is taken: once granted, the same key is a first request."""
    key = {"Idempotency-Key": "refused-first"}
    viewer = Api(http, api.tenant, "viewer-token")

    refused = await viewer.post("/scripts", json={"name": "No", "slug": "no"}, headers=key)
    allowed = await api.post("/scripts", json={"name": "Yes", "slug": "yes"}, headers=key)

    assert refused.status_code == 403
    assert allowed.status_code == 201
    assert "Idempotent-Replayed" not in allowed.headers


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "localhost", "127.8.9.10"])
def test_development_mode_may_listen_on_loopback(host: str) -> None:
    check_bind_address(Settings.from_env({}), host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "api.example.com"])
def test_development_mode_refuses_other_addresses_unless_asked_explicitly(host: str) -> None:
    with pytest.raises(ConfigError, match="AUTH_DEV_MODE=true"):
        check_bind_address(Settings.from_env({}), host)

    check_bind_address(Settings.from_env({"AUTH_DEV_MODE": "true"}), host)
    check_bind_address(Settings.from_env({"AUTH_TOKENS": f"{ADMIN_TOKEN}=a:admin@*"}), host)


def test_scriptworks_run_refuses_a_public_address_in_development_mode() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "LITESTAR_"))}
    env["DATABASE_URL"] = "postgresql+asyncpg://nobody@127.0.0.1:1/never-reached"

    result = subprocess.run(
        [sys.executable, "-m", "app", "run", "--host", "0.0.0.0", "--port", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "Refusing to listen on 0.0.0.0" in result.stderr + result.stdout
