"""Hostile input: oversized, deeply nested, malformed or malicious requests get a clear 4xx in the
error shape, and change nothing (checked by reading the tenant's data before and after).

In-process where the test client can send the request; against a real server, over a raw socket,
where it cannot (bytes a client library refuses, paths it would normalise, chunked bodies).
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.api import ADMIN_TOKEN, Api, assert_error, new_tenant
from tests.support.runs import GRAPH, script_with_version
from tests.support.server import ServerProcess

LIMIT = 5 * 1024 * 1024
JSON = {"Content-Type": "application/json"}


@dataclass
class World:
    """One script with two versions and a run with a variable, in the caller's tenant."""

    api: Api
    script_id: str
    run_id: str

    def fill(self, path: str) -> str:
        return path.format(script_id=self.script_id, run_id=self.run_id)

    async def snapshot(self) -> list[Any]:
        paths = [
            "/scripts",
            f"/scripts/{self.script_id}",
            f"/scripts/{self.script_id}/versions",
            f"/scripts/{self.script_id}/audit",
            "/runs",
            f"/runs/{self.run_id}",
            "/audit",
        ]
        snapshot = []
        for path in paths:
            response = await self.api.get(path, params={"limit": 200})
            assert response.status_code == 200, response.text
            snapshot.append(response.json())
        return snapshot


@pytest.fixture
async def world(api: Api) -> World:
    script_id, version = await script_with_version(api)
    await api.create_version(script_id, GRAPH)
    run = (await api.post("/runs", json={"scriptId": script_id, "version": version})).json()
    assert (await api.post(f"/runs/{run['id']}/vars", json=[{"key": "k", "strVal": "v"}])).status_code == 200
    return World(api, script_id, run["id"])


# (method, path, a valid body) for every route that takes a body.
STEP = {"nodeId": "greet", "stepType": "say", "executedAt": "2026-01-01T00:00:00.000Z"}
BODY_ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/scripts", {"name": "New", "slug": "new"}),
    ("PATCH", "/scripts/{script_id}", {"name": "Renamed"}),
    ("POST", "/scripts/{script_id}/versions", {"graphJson": GRAPH}),
    ("POST", "/runs", {"scriptId": "{script_id}", "version": 1}),
    ("POST", "/runs/{run_id}/vars", [{"key": "x", "strVal": "y"}]),
    ("POST", "/runs/{run_id}/steps", [STEP]),
    ("POST", "/runs/{run_id}/finish", {"status": "SUCCEEDED"}),
    ("POST", "/commands", {"command": "Contacts.UpsertAndLink.v1", "actor": {"userId": "u"}}),
]
BODY_ROUTE_IDS = [f"{m} {p}" for m, p, _ in BODY_ROUTES]
LIST_ROUTES = ["/scripts", "/runs", "/audit", "/scripts/{script_id}/versions", "/scripts/{script_id}/audit"]


def encoded(world: World, body: Any) -> bytes:
    return json.dumps(body).replace("{script_id}", world.script_id).replace("{run_id}", world.run_id).encode()


def padded(raw: bytes, size: int) -> bytes:
    """The same JSON, padded with trailing whitespace (still valid JSON) to exactly ``size`` bytes."""
    return raw + b" " * (size - len(raw))


async def send(world: World, method: str, path: str, content: bytes, headers: dict[str, str] | None = None):
    return await world.api.request(
        method, world.fill(path), content=content, headers={**JSON, **(headers or {})}
    )


# ---- body size --------------------------------------------------------------------------------


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotency-key"])
@pytest.mark.parametrize(("method", "path", "body"), BODY_ROUTES, ids=BODY_ROUTE_IDS)
async def test_a_body_one_byte_over_5_mib_is_413_and_changes_nothing(
    world: World, method: str, path: str, body: Any, idempotent: bool
) -> None:
    before = await world.snapshot()
    headers = {"Idempotency-Key": "big-1"} if idempotent else {}

    response = await send(world, method, path, padded(encoded(world, body), LIMIT + 1), headers)

    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert await world.snapshot() == before


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotency-key"])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [BODY_ROUTES[2], BODY_ROUTES[4], BODY_ROUTES[7]],
    ids=[BODY_ROUTE_IDS[2], BODY_ROUTE_IDS[4], BODY_ROUTE_IDS[7]],
)
async def test_a_body_of_exactly_5_mib_is_accepted(
    world: World, method: str, path: str, body: Any, idempotent: bool
) -> None:
    headers = {"Idempotency-Key": "exact-1"} if idempotent else {}

    response = await send(world, method, path, padded(encoded(world, body), LIMIT), headers)

    assert response.status_code in (200, 201, 202), response.text


# ---- nesting, size of arrays --------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("POST", "/scripts/{script_id}/versions", '{"graphJson": {"nodes": [], "edges": [], "deep": %s}}'),
        (
            "POST",
            "/scripts/{script_id}/versions",
            '{"graphJson": {"nodes": [], "edges": []}, "variablesDef": %s}',
        ),
        ("POST", "/runs/{run_id}/vars", '[{"key": "deep", "jsonVal": %s}]'),
        ("POST", "/commands", '{"command": "A.B.v1", "actor": {"userId": "u"}, "payload": {"d": %s}}'),
        ("POST", "/scripts", "%s"),
    ],
    ids=["graph", "variables-def", "var-json", "command-payload", "whole-body"],
)
async def test_deeply_nested_json_is_400_and_changes_nothing(
    world: World, method: str, path: str, template: str, depth: int
) -> None:
    before = await world.snapshot()

    response = await send(world, method, path, (template % nested(depth)).encode())

    assert_error(response, 400, "VALIDATION_ERROR")
    assert await world.snapshot() == before


async def test_moderately_nested_json_is_stored_and_read_back(world: World) -> None:
    graph = {"nodes": [], "edges": [], "deep": json.loads(nested(200))}
    created = await world.api.post(f"/scripts/{world.script_id}/versions", json={"graphJson": graph})
    assert created.status_code == 201, created.text
    version = created.json()["version"]

    read = await world.api.get(f"/scripts/{world.script_id}/versions/{version}")
    diff = await world.api.get(f"/scripts/{world.script_id}/versions/1/diff/{version}")

    assert read.status_code == 200
    assert read.json()["graphJson"] == graph
    assert diff.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/scripts", {"name": "x", "slug": "x", "labels": ["a"] * 100_000}),
        ("PATCH", "/scripts/{script_id}", {"intents": ["i"] * 101}),
        ("POST", "/runs/{run_id}/vars", [{"key": f"k{i}", "numVal": i} for i in range(1_001)]),
        ("POST", "/runs/{run_id}/steps", [STEP] * 1_001),
        ("POST", "/runs/{run_id}/vars", []),
        ("POST", "/runs/{run_id}/steps", []),
    ],
    ids=["labels-100k", "intents-101", "vars-1001", "steps-1001", "vars-empty", "steps-empty"],
)
async def test_arrays_beyond_their_bounds_are_400_and_change_nothing(
    world: World, method: str, path: str, body: Any
) -> None:
    before = await world.snapshot()

    response = await send(world, method, path, encoded(world, body))

    assert_error(response, 400, "VALIDATION_ERROR")
    assert await world.snapshot() == before


async def test_a_graph_of_20000_nodes_is_stored_and_compared(world: World) -> None:
    nodes = [{"id": f"n{i}", "type": "say"} for i in range(20_000)]
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(19_999)]
    created = await world.api.post(
        f"/scripts/{world.script_id}/versions", json={"graphJson": {"nodes": nodes, "edges": edges}}
    )
    assert created.status_code == 201, created.text

    diff = await world.api.get(f"/scripts/{world.script_id}/versions/1/diff/{created.json()['version']}")

    assert diff.status_code == 200
    assert len(diff.json()["nodes"]["added"]) == 20_000


# ---- encodings and NUL ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "\xff\xfe", "slug": "bad"}',
        b'{"name": "\xc0\xaf", "slug": "overlong"}',
        b'{"name": "\xed\xa0\x80", "slug": "surrogate-bytes"}',
        b'{"name": "\\ud800", "slug": "lone-surrogate"}',
        b'{"name": "a\x00b", "slug": "raw-nul"}',
        b"\xef\xbb\xbf{}",
    ],
    ids=["invalid-bytes", "overlong", "utf8-surrogate", "escaped-lone-surrogate", "raw-nul", "bom"],
)
async def test_invalid_utf8_and_raw_control_bytes_are_400(world: World, raw: bytes) -> None:
    before = await world.snapshot()

    response = await send(world, "POST", "/scripts", raw)

    assert_error(response, 400, "VALIDATION_ERROR")
    assert await world.snapshot() == before


NUL = "a\u0000b"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/scripts", {"name": NUL, "slug": "nul"}),
        ("POST", "/scripts", {"name": "n", "slug": "nul", "labels": [NUL]}),
        ("PATCH", "/scripts/{script_id}", {"description": NUL}),
        ("PATCH", "/scripts/{script_id}", {"name": "Renamed", "note": NUL}),
        ("POST", "/scripts/{script_id}/versions", {"graphJson": {"nodes": [], "edges": [], NUL: 1}}),
        ("POST", "/scripts/{script_id}/versions", {"graphJson": GRAPH, "changelog": NUL}),
        ("POST", "/runs", {"scriptId": "{script_id}", "version": 1, "connectorKey": NUL}),
        ("POST", "/runs/{run_id}/vars", [{"key": NUL, "strVal": "v"}]),
        ("POST", "/runs/{run_id}/vars", [{"key": "k", "jsonVal": {"x": NUL}}]),
        ("POST", "/runs/{run_id}/steps", [{**STEP, "data": None, "nodeId": NUL}]),
        ("POST", "/commands", {"command": "A.B.v1", "actor": {"userId": NUL}}),
        ("POST", "/commands", {"command": "A.B.v1", "actor": {"userId": "u"}, "payload": {"p": NUL}}),
    ],
    ids=[
        "script-name",
        "label",
        "description",
        "note",
        "graph-key",
        "changelog",
        "connector-key",
        "var-key",
        "var-json",
        "step-node",
        "command-actor",
        "command-payload",
    ],
)
async def test_nul_characters_in_values_are_400_and_change_nothing(
    world: World, method: str, path: str, body: Any
) -> None:
    before = await world.snapshot()

    response = await send(world, method, path, encoded(world, body))

    assert response.status_code in (400, 422), response.text
    assert_error(response, response.status_code, response.json()["code"])
    assert await world.snapshot() == before


# ---- filters, limits, cursors -------------------------------------------------------------------

SQL_METACHARACTERS = ["' OR '1'='1", "'; DROP TABLE scripts; --", "%", "_", "\\", '"', "$1", "*", NUL]
FILTERS = [
    ("/scripts", "q"),
    ("/scripts", "label"),
    ("/scripts", "status"),
    ("/runs", "scriptId"),
    ("/runs", "status"),
    ("/runs", "triggerType"),
    ("/runs", "triggeringEventId"),
    ("/runs", "from"),
    ("/audit", "actorId"),
    ("/audit", "action"),
    ("/audit", "to"),
    ("/scripts/{script_id}/audit", "action"),
    ("/scripts", "cursor"),
    ("/scripts", "tenantId"),
]


@pytest.mark.parametrize(("path", "name"), FILTERS, ids=[f"{p}?{n}" for p, n in FILTERS])
async def test_sql_metacharacters_in_filters_match_nothing_or_are_rejected(
    world: World, path: str, name: str
) -> None:
    before = await world.snapshot()

    for value in SQL_METACHARACTERS:
        response = await world.api.get(world.fill(path), params={name: value})
        if response.status_code == 200:
            assert response.json()["items"] == [], value
        else:
            assert response.status_code in (400, 403), (value, response.text)
            assert_error(response, response.status_code, response.json()["code"])
    assert await world.snapshot() == before


@pytest.mark.parametrize("value", ["%", "_", "\\", "' OR '1'='1"], ids=repr)
async def test_metacharacters_in_a_path_id_are_not_found(world: World, value: str) -> None:
    response = await world.api.get(f"/commands/{value}")

    assert_error(response, 404, "NOT_FOUND")


async def test_nul_in_a_path_id_is_400(world: World) -> None:
    assert_error(await world.api.get("/commands/a%00b"), 400, "VALIDATION_ERROR")


async def test_like_wildcards_in_q_are_literal(world: World) -> None:
    await world.api.create_script("with-100-percent", name="100% sure")

    found = (await world.api.get("/scripts", params={"q": "%"})).json()["items"]
    underscore = (await world.api.get("/scripts", params={"q": "_"})).json()["items"]

    assert [s["name"] for s in found] == ["100% sure"]
    assert underscore == []


@pytest.mark.parametrize("path", LIST_ROUTES)
async def test_limits_outside_1_to_200_are_400(world: World, path: str) -> None:
    for limit in ["-1", "0", "201", str(10**30), "abc", "1.5", "", " 5", "0x10"]:
        response = await world.api.get(world.fill(path), params={"limit": limit})
        assert_error(response, 400, "VALIDATION_ERROR")


def cursor_of(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).rstrip(b"=").decode()


ZERO = "00000000-0000-7000-8000-000000000000"
FORGED_CURSORS = {
    "not-base64": "!!!not-base64!!!",
    "not-json": base64.urlsafe_b64encode(b"not json").decode(),
    "object": cursor_of({"t": 1}),
    "empty-list": cursor_of([]),
    "wrong-arity": cursor_of([1, 2, 3]),
    "wrong-types": cursor_of(["x", "y"]),
    "unknown-tag": cursor_of([{"z": 1}, {"u": "00000000-0000-0000-0000-000000000000"}]),
    "huge-int": cursor_of([10**30]),
    "bool": cursor_of([True]),
    "time-overflow": cursor_of(
        [{"t": "9999-12-31T23:59:59-14:00"}, {"u": "00000000-0000-7000-8000-000000000000"}]
    ),
    "naive-time": cursor_of([{"t": "2026-01-01T00:00:00"}, {"u": ZERO}]),
    "bad-uuid": cursor_of([{"t": "2026-01-01T00:00:00+00:00"}, {"u": "not-a-uuid"}]),
    "too-long": "A" * 600,
}


@pytest.mark.parametrize("path", LIST_ROUTES)
async def test_forged_cursors_are_400(world: World, path: str) -> None:
    for name, cursor in FORGED_CURSORS.items():
        response = await world.api.get(world.fill(path), params={"cursor": cursor})
        assert response.status_code == 400, (name, response.text)
        assert_error(response, 400, "VALIDATION_ERROR")


# ---- unicode ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "slug",
    [
        "ünïcode",
        "\uff53\uff4c\uff55\uff47",
        "slug\u200b",
        "slug\u0301",
        "SLUG",
        "a--b",
        "-a",
        "a-",
        "🙂",
        "a b",
        "a/b",
        "",
    ],
)
async def test_unicode_and_malformed_slugs_are_400(world: World, slug: str) -> None:
    before = await world.snapshot()

    created = await world.api.post("/scripts", json={"name": "x", "slug": slug})
    patched = await world.api.patch(f"/scripts/{world.script_id}", json={"slug": slug})

    assert_error(created, 400, "VALIDATION_ERROR")
    assert_error(patched, 400, "VALIDATION_ERROR")
    assert await world.snapshot() == before


async def test_unicode_names_labels_and_filters_round_trip(world: World) -> None:
    name = "Grüße 🙂 — 東京 \u202e"
    created = await world.api.post("/scripts", json={"name": name, "slug": "unicode", "labels": ["ü", "東"]})
    assert created.status_code == 201, created.text

    by_q = (await world.api.get("/scripts", params={"q": "GRÜSSE"})).json()["items"]
    by_q_exact = (await world.api.get("/scripts", params={"q": "grüße"})).json()["items"]
    by_label = (await world.api.get("/scripts", params={"label": "東"})).json()["items"]

    assert created.json()["name"] == name
    assert by_q == []  # case-insensitive, but ß is not SS
    assert [s["slug"] for s in by_q_exact] == [s["slug"] for s in by_label] == ["unicode"]


# ---- headers ------------------------------------------------------------------------------------


async def test_headers_over_64_kib_in_all_are_431(world: World) -> None:
    before = await world.snapshot()
    huge = {f"X-Padding-{i}": "x" * 8_000 for i in range(9)}

    read = await world.api.get("/scripts", headers=huge)
    write = await world.api.post("/scripts", json={"name": "x", "slug": "x"}, headers=huge)
    health = await world.api.http.get("/health", headers=huge)

    for response in (read, write, health):
        assert_error(response, 431, "HEADERS_TOO_LARGE")
        assert response.headers["Correlation-Id"]
    assert await world.snapshot() == before


@pytest.mark.parametrize(
    ("header", "method", "status", "code"),
    [
        ("x-tenant-id", "POST", 400, "VALIDATION_ERROR"),
        ("x-tenant-id", "PATCH", 400, "VALIDATION_ERROR"),
        ("Authorization", "POST", 401, "UNAUTHORIZED"),
        ("Authorization", "PATCH", 401, "UNAUTHORIZED"),
        ("Idempotency-Key", "POST", 400, "VALIDATION_ERROR"),  # read on POSTs only
        ("If-Match", "PATCH", 400, "VALIDATION_ERROR"),  # read on PATCH only
    ],
)
async def test_enormous_header_values_are_refused(
    world: World, header: str, method: str, status: int, code: str
) -> None:
    before = await world.snapshot()
    value = "Bearer " + "a" * 60_000 if header == "Authorization" else '"' + "a" * 60_000 + '"'
    path, body = (
        (f"/scripts/{world.script_id}", {"name": "Hijacked"})
        if method == "PATCH"
        else ("/scripts", {"name": "x", "slug": "x"})
    )

    response = await world.api.request(method, path, json=body, headers={header: value})

    assert_error(response, status, code)
    assert await world.snapshot() == before


async def test_an_enormous_correlation_id_is_replaced(world: World) -> None:
    response = await world.api.get("/scripts", headers={"Correlation-Id": "c" * 60_000})

    assert response.status_code == 200
    assert len(response.headers["Correlation-Id"]) == 36


# ---- on a real server: raw bytes, paths a client would normalise, chunked bodies ---------------


def raw_request(server: ServerProcess, request: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def raw_get(server: ServerProcess, target: bytes, tenant: str, extra: bytes = b"") -> tuple[int, bytes]:
    return raw_request(
        server,
        b"GET "
        + target
        + b" HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
        + ADMIN_TOKEN.encode()
        + b"\r\nx-tenant-id: "
        + tenant.encode()
        + b"\r\n"
        + extra
        + b"Connection: close\r\n\r\n",
    )


@pytest.fixture
def stranger() -> str:
    return new_tenant()


@pytest.mark.parametrize(
    "target",
    [
        b"/hooks/acme/../../scripts",
        b"/hooks/acme/%2e%2e/%2e%2e/scripts",
        b"/hooks/acme/..%2f..%2fscripts",
        b"/hooks/acme/..\\..\\scripts",
        b"/hooks/../health",
        b"/hooks/acme/%2F%2Fetc%2Fpasswd",
        b"/hooks/acme/....//....//scripts",
        b"/scripts/../metrics",
    ],
)
def test_path_traversal_is_not_found(live_server: ServerProcess, stranger: str, target: bytes) -> None:
    """``/hooks/{tenantId}/{route}`` answers only routes an endpoint declares; a traversal never
    reaches another route. (Until endpoints exist, every ``/hooks/...`` path is a 404.)"""
    status, body = raw_get(live_server, target, stranger)

    assert status == 404
    assert json.loads(body)["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("extra", "target"),
    [
        (b"x-tenant-id-2: a\x00b\r\n", b"/scripts"),
        (b"If-Match: \x01\x02\r\n", b"/scripts"),
        (b"Correlation-Id: a\x7fb\r\n", b"/scripts"),
        (b"", b"/scripts/\xff\xfe"),
        (b"", b"/scripts?q=a b"),
    ],
    ids=["nul-in-header", "control-in-header", "del-in-header", "invalid-utf8-path", "space-in-target"],
)
def test_bytes_http_forbids_are_refused_by_the_server(
    live_server: ServerProcess, stranger: str, extra: bytes, target: bytes
) -> None:
    """The HTTP server refuses these before the app runs, with its own plain-text 400."""
    status, _ = raw_get(live_server, target, stranger, extra)

    assert status == 400


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotency-key"])
def test_a_chunked_body_over_5_mib_is_413(
    live_server: ServerProcess, stranger: str, idempotent: bool
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "big", "slug": "big", "description": "'
        for _ in range(LIMIT // 65536 + 1):
            yield b"x" * 65536
        yield b'"}'

    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "x-tenant-id": stranger, **JSON}
    if idempotent:
        headers["Idempotency-Key"] = "chunked-1"
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        response = client.post("/scripts", content=chunks(), headers=headers)
        listed = client.get("/scripts", headers=headers)

    assert "content-length" not in response.request.headers
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert listed.json()["items"] == []


@pytest.mark.parametrize(
    "value",
    ["-1", "abc", "1.5", "+5", "1_000", "٣", "9" * 19 + "0", str(2**63), "1 2", "0x10"],
)
def test_hostile_last_event_ids_are_400_before_the_stream_starts(
    live_server: ServerProcess, stranger: str, value: str
) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "x-tenant-id": stranger}
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        by_header = client.get("/events/stream", headers={**headers, "Last-Event-ID": value.encode()})
        by_query = client.get("/events/stream", headers=headers, params={"since": value})

    assert_error(by_header, 400, "VALIDATION_ERROR")
    assert_error(by_query, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("actor", "field"),
    [({}, "actor.userId"), (5, "actor"), ([], "actor"), ({"userId": ""}, "actor.userId")],
    ids=["empty-object", "number", "array", "empty-user-id"],
)
async def test_a_malformed_actor_in_a_command_is_400_naming_it(world: World, actor: Any, field: str) -> None:
    """``actor`` is also the name of a dependency; an error there is still the client's."""
    response = await world.api.post("/commands", json={"command": "A.B.v1", "actor": actor})

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == field
