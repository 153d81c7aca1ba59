"""The test client of the API: one caller in one tenant, the tokens of each role, and the check
of the error shape."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

ADMIN_TOKEN = "admin-token"
USER_TOKEN = "user-token"
SERVICE_TOKEN = "service-token"
# One token per role, each granted every tenant (tests make a tenant of their own each), and
# tokens granted only the fixed tenants below, for the tenant boundary.
ROLE_TOKENS = {
    "admin": ADMIN_TOKEN,
    "editor": USER_TOKEN,
    "service": SERVICE_TOKEN,
    "runner": "runner-token",
    "viewer": "viewer-token",
    "operator": "operator-token",
}
ALICE_TENANT = "alice-co"
BOB_TENANT = "bob-co"
ALICE_TOKEN = "alice-only-token"  # admin of alice-co only
BOB_TOKEN = "bob-only-token"  # admin of bob-co only
AUTH_TOKENS = ",".join(
    [
        f"{ADMIN_TOKEN}=alice:admin@*",
        f"{USER_TOKEN}=bob:editor@*",
        f"{SERVICE_TOKEN}=svc-1:service@*",
        "runner-token=rudy:runner@*",
        "viewer-token=vera:viewer@*",
        "operator-token=otto:operator@*",
        f"{ALICE_TOKEN}=alice:admin@{ALICE_TENANT}",
        f"{BOB_TOKEN}=bob:admin|service@{BOB_TENANT}",
    ]
)


class Api:
    """An HTTP client acting as one caller in one tenant; override headers per call as needed."""

    def __init__(self, http: httpx.AsyncClient, tenant: str, token: str | None = ADMIN_TOKEN) -> None:
        self.http = http
        self.tenant = tenant
        self.token = token

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"x-tenant-id": self.tenant}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def as_(self, *, tenant: str | None = None, token: str | None = ADMIN_TOKEN) -> Api:
        return Api(self.http, tenant or self.tenant, token)

    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None, **kw: Any):
        return await self.http.request(method, url, headers=self.headers(headers), **kw)

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", url, **kw)

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", url, **kw)

    async def patch(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("PATCH", url, **kw)

    async def put(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("PUT", url, **kw)

    async def delete(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kw)

    # ---- builders through the public API --------------------------------------------------------

    async def create_script(self, slug: str | None = None, **fields: Any) -> dict[str, Any]:
        slug = slug or f"script-{uuid.uuid4().hex[:8]}"
        response = await self.post("/scripts", json={"name": slug.title(), "slug": slug, **fields})
        assert response.status_code == 201, response.text
        return response.json()

    async def create_version(self, script_id: str, graph: dict[str, Any] | None = None, **fields: Any):
        body = {"graphJson": graph if graph is not None else {"nodes": [], "edges": []}, **fields}
        response = await self.post(f"/scripts/{script_id}/versions", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    async def publish(self, script_id: str, version: int) -> dict[str, Any]:
        response = await self.post(f"/scripts/{script_id}/versions/{version}/publish")
        assert response.status_code == 200, response.text
        return response.json()


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the documented error shape with this status and code, and nothing else."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["message"], str)
    assert body["message"]
    assert set(body) <= {"code", "message", "details", "correlationId"}, body
    assert response.headers["content-type"].startswith("application/json")
    return body
