"""JWT bearer authentication (SPEC 3.1): HS256 with AUTH_JWT_SECRET, RS256/ES256/EdDSA against a
JWK set read from a file or fetched over HTTP, key rotation, the tokens that must be refused, and
that no token ever reaches the logs.

Keys are made here with ``cryptography``; the HTTP JWK set is served by a ``ThreadingHTTPServer``
on 127.0.0.1 whose documents a test can change while the app runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from litestar.testing import AsyncTestClient

from app.server.core import create_app
from tests.conftest import make_settings
from tests.support.api import ADMIN_TOKEN, Api, assert_error, new_tenant

SECRET = "scriptworks-test-jwt-secret-0123456789abcdef"  # >= 32 bytes, as AUTH_JWT_SECRET requires
ISSUER = "https://idp.example/"
AUDIENCE = "scriptworks-api"
BASE_URL = "http://testserver.local"


# ---- tokens ---------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def claims(
    tenants: list[str] | str,
    *,
    sub: str | None = None,
    roles: list[str] | None = None,
    lifetime: int = 300,
    **extra: Any,
) -> dict[str, Any]:
    """A token's claims: an actor of its own, the roles and tenants given, valid for ``lifetime``."""
    now = int(time.time())
    return {
        "sub": sub or f"jwt-{uuid.uuid4().hex[:8]}",
        "roles": roles if roles is not None else ["editor"],
        "tenants": tenants,
        "iat": now,
        "exp": now + lifetime,
        **extra,
    }


def hs256(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def hand_made(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64url_json(header)}.{b64url_json(payload)}.{b64url(signature)}"


def hmac_signed(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """A token whose header says whatever ``header`` says, signed with HMAC-SHA256 over ``key``."""
    signing_input = f"{b64url_json(header)}.{b64url_json(payload)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: Any
    jwk: dict[str, Any]  # the public key, as published in a JWK set

    def sign(self, payload: dict[str, Any]) -> str:
        return jwt.encode(payload, self.private_key, algorithm=self.algorithm, headers={"kid": self.kid})

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _published(kid: str, jwk: dict[str, Any], use: str = "sig") -> dict[str, Any]:
    return {**jwk, "kid": kid, "use": use}


def rsa_key(kid: str, use: str = "sig") -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return SigningKey(kid, "RS256", private, _published(kid, jwk, use))


def ec_key(kid: str) -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return SigningKey(kid, "ES256", private, _published(kid, jwk))


def ed25519_key(kid: str) -> SigningKey:
    private = ed25519.Ed25519PrivateKey.generate()
    jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return SigningKey(kid, "EdDSA", private, _published(kid, jwk))


def jwk_set(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [key.jwk for key in keys]}


def assert_invalid_token(response: httpx.Response, token: str) -> None:
    """401 UNAUTHORIZED with RFC 6750's ``invalid_token`` challenge, and the token not echoed."""
    assert_error(response, 401, "UNAUTHORIZED")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer "), challenge
    assert 'error="invalid_token"' in challenge, challenge
    signature = token.rsplit(".", 1)[-1]
    for echoed in (response.text, *response.headers.values()):
        assert token not in echoed
        assert not signature or signature not in echoed


# ---- a JWK set over HTTP --------------------------------------------------------------------


class JwksServer:
    """Serves JSON documents by path on 127.0.0.1 and counts the requests for each."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        self.fetches: dict[str, int] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.fetches[self.path] = owner.fetches.get(self.path, 0) + 1
                document = owner.documents.get(self.path)
                body = json.dumps(document).encode()
                self.send_response(200 if document is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output quiet

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="jwks-server", daemon=True)

    def url(self, path: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def serve(self, path: str, *keys: SigningKey) -> str:
        self.documents[path] = jwk_set(*keys)
        return self.url(path)

    def start(self) -> JwksServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer().start()
    try:
        yield server
    finally:
        server.stop()


# ---- keys and apps --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    """One published key per asymmetric algorithm, by algorithm."""
    return {"RS256": rsa_key("rsa-1"), "ES256": ec_key("ec-1"), "EdDSA": ed25519_key("ed-1")}


@pytest.fixture(scope="module")
def jwks_file(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, SigningKey]) -> Path:
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps(jwk_set(*keys.values())))
    return path


@asynccontextmanager
async def serve_app(database_url: str, **env: str) -> AsyncIterator[httpx.AsyncClient]:
    """An app of its own (``make_settings`` also configures the static AUTH_TOKENS)."""
    app = create_app(make_settings(database_url, **env))
    async with AsyncTestClient(app=app, base_url=BASE_URL) as client:
        yield client


@pytest.fixture(scope="module")
async def hs_http(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """AUTH_JWT_SECRET (and the static tokens), no issuer or audience configured."""
    async with serve_app(database_url, AUTH_JWT_SECRET=SECRET) as client:
        yield client


@pytest.fixture(scope="module")
async def file_http(database_url: str, jwks_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The JWK set from a file, the HS256 secret too, and issuer and audience required."""
    async with serve_app(
        database_url,
        AUTH_JWT_JWKS=str(jwks_file),
        AUTH_JWT_SECRET=SECRET,
        AUTH_JWT_ISSUER=ISSUER,
        AUTH_JWT_AUDIENCE=AUDIENCE,
    ) as client:
        yield client


@pytest.fixture(scope="module")
async def url_http(
    database_url: str, jwks_server: JwksServer, keys: dict[str, SigningKey]
) -> AsyncIterator[httpx.AsyncClient]:
    """The JWK set fetched over HTTP; no HS256 secret, issuer or audience."""
    url = jwks_server.serve("/.well-known/jwks.json", *keys.values())
    async with serve_app(database_url, AUTH_JWT_JWKS=url) as client:
        yield client


def for_issuer(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "iss": ISSUER, "aud": AUDIENCE}


# ---- HS256 ----------------------------------------------------------------------------------


async def test_hs256_token_with_roles_and_tenants_is_accepted(hs_http: httpx.AsyncClient) -> None:
    tenant = new_tenant()
    token = hs256(claims([tenant], sub="jwt-editor-1", roles=["editor"]))
    api = Api(hs_http, tenant, token)

    created = await api.create_script("from-jwt")
    listed = await api.get("/scripts")
    fetched = await api.get(f"/scripts/{created['id']}")

    assert created["createdById"] == "jwt-editor-1"
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]
    assert fetched.status_code == 200
    assert fetched.json()["createdById"] == "jwt-editor-1"


async def test_hs256_token_for_a_tenant_not_granted_is_tenant_forbidden(hs_http: httpx.AsyncClient) -> None:
    granted, other = new_tenant(), new_tenant()
    token = hs256(claims([granted], roles=["admin"]))
    api = Api(hs_http, other, token)

    assert_error(await api.get("/scripts"), 403, "TENANT_FORBIDDEN")
    assert_error(await api.post("/scripts", json={"name": "X", "slug": "x"}), 403, "TENANT_FORBIDDEN")
    assert (await api.as_(tenant=granted, token=token).get("/scripts")).status_code == 200


async def test_hs256_token_without_tenants_claim_grants_no_tenant(hs_http: httpx.AsyncClient) -> None:
    payload = claims([], roles=["admin"])
    del payload["tenants"]

    response = await Api(hs_http, new_tenant(), hs256(payload)).get("/scripts")

    assert_error(response, 403, "TENANT_FORBIDDEN")


async def test_hs256_viewer_may_read_but_not_create_scripts(hs_http: httpx.AsyncClient) -> None:
    tenant = new_tenant()
    api = Api(hs_http, tenant, hs256(claims([tenant], roles=["viewer"])))

    listed = await api.get("/scripts")
    created = await api.post("/scripts", json={"name": "Nope", "slug": "nope"})

    assert listed.status_code == 200
    assert_error(created, 403, "FORBIDDEN")
    assert (await api.get("/scripts")).json()["items"] == []


async def test_hs256_unknown_role_names_grant_nothing(hs_http: httpx.AsyncClient) -> None:
    tenant = new_tenant()
    api = Api(hs_http, tenant, hs256(claims([tenant], roles=["superuser", "root"])))

    assert_error(await api.post("/scripts", json={"name": "Nope", "slug": "nope"}), 403, "FORBIDDEN")
    assert_error(await api.get("/scripts"), 403, "FORBIDDEN")


async def test_wildcard_tenants_claim_grants_every_tenant(hs_http: httpx.AsyncClient) -> None:
    token = hs256(claims("*", sub="jwt-everywhere", roles=["editor"]))

    for tenant in (new_tenant(), new_tenant()):
        created = await Api(hs_http, tenant, token).create_script("anywhere")
        assert created["createdById"] == "jwt-everywhere"


async def test_custom_roles_and_tenants_claim_names_are_read(database_url: str) -> None:
    tenant = new_tenant()
    roles_claim, tenants_claim = "https://scriptworks.example/roles", "org_ids"

    def token(**named: Any) -> str:
        payload = claims([], sub="jwt-custom")
        del payload["roles"], payload["tenants"]
        return hs256({**payload, **named})

    custom = token(**{roles_claim: ["editor"], tenants_claim: [tenant]})
    # The default claim names mean nothing once others are configured.
    tenants_by_default_name = token(**{roles_claim: ["editor"], "tenants": [tenant]})
    roles_by_default_name = token(**{"roles": ["admin"], tenants_claim: [tenant]})

    async with serve_app(
        database_url,
        AUTH_JWT_SECRET=SECRET,
        AUTH_JWT_ROLES_CLAIM=roles_claim,
        AUTH_JWT_TENANTS_CLAIM=tenants_claim,
    ) as client:
        created = await Api(client, tenant, custom).create_script("custom-claims")
        listed = await Api(client, tenant, custom).get("/scripts")
        no_tenant = await Api(client, tenant, tenants_by_default_name).get("/scripts")
        no_role = await Api(client, tenant, roles_by_default_name).get("/scripts")

    assert created["createdById"] == "jwt-custom"
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]
    assert_error(no_tenant, 403, "TENANT_FORBIDDEN")
    assert_error(no_role, 403, "FORBIDDEN")


async def test_static_tokens_and_jwt_work_in_one_app(hs_http: httpx.AsyncClient) -> None:
    tenant = new_tenant()
    static = Api(hs_http, tenant, ADMIN_TOKEN)
    bearer = Api(hs_http, tenant, hs256(claims([tenant], sub="jwt-side-by-side")))

    by_static = await static.create_script("by-static")
    by_jwt = await bearer.create_script("by-jwt")
    seen_by_static = await static.get("/scripts")
    seen_by_jwt = await bearer.get("/scripts")

    assert by_static["createdById"] == "alice"
    assert by_jwt["createdById"] == "jwt-side-by-side"
    expected = {by_static["id"], by_jwt["id"]}
    assert {item["id"] for item in seen_by_static.json()["items"]} == expected
    assert {item["id"] for item in seen_by_jwt.json()["items"]} == expected


# ---- RS256, ES256, EdDSA against a JWK set ---------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
async def test_asymmetric_token_verifies_against_a_jwks_file(
    file_http: httpx.AsyncClient, keys: dict[str, SigningKey], algorithm: str
) -> None:
    tenant = new_tenant()
    sub = f"jwt-file-{algorithm.lower()}"
    token = keys[algorithm].sign(for_issuer(claims([tenant], sub=sub)))
    api = Api(file_http, tenant, token)

    created = await api.create_script()
    listed = await api.get("/scripts")

    assert created["createdById"] == sub
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
async def test_asymmetric_token_verifies_against_a_jwks_url(
    url_http: httpx.AsyncClient, keys: dict[str, SigningKey], algorithm: str
) -> None:
    tenant = new_tenant()
    sub = f"jwt-url-{algorithm.lower()}"
    api = Api(url_http, tenant, keys[algorithm].sign(claims([tenant], sub=sub)))

    created = await api.create_script()
    listed = await api.get("/scripts")

    assert created["createdById"] == sub
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]


async def test_hs256_token_is_refused_when_only_a_jwks_is_configured(url_http: httpx.AsyncClient) -> None:
    tenant = new_tenant()
    token = hs256(claims([tenant], roles=["admin"]))

    assert_invalid_token(await Api(url_http, tenant, token).get("/scripts"), token)


async def test_rotated_key_is_accepted_without_a_restart(database_url: str, jwks_server: JwksServer) -> None:
    tenant = new_tenant()
    old, new = rsa_key("rotate-old"), ec_key("rotate-new")
    url = jwks_server.serve("/rotating/jwks.json", old)
    # Every fetch of the set (the first one included) starts PyJWKClient's cooldown, during which
    # an unknown kid is refused without a refetch; with the default 30 s the new key would only be
    # accepted half a minute after the first request. 0 lets the test rotate at once, no sleep.
    async with serve_app(database_url, AUTH_JWT_JWKS=url, AUTH_JWT_JWKS_COOLDOWN_SECONDS="0") as client:
        before = await Api(client, tenant, old.sign(claims([tenant]))).get("/scripts")
        jwks_server.serve("/rotating/jwks.json", old, new)  # the identity provider rotates
        with_new = await Api(client, tenant, new.sign(claims([tenant], sub="jwt-rotated"))).create_script()
        with_old = await Api(client, tenant, old.sign(claims([tenant]))).get("/scripts")

    assert before.status_code == 200
    assert with_new["createdById"] == "jwt-rotated"
    assert with_old.status_code == 200
    assert jwks_server.fetches["/rotating/jwks.json"] == 2


async def test_unknown_kid_does_not_refetch_the_jwks_within_the_cooldown(
    database_url: str, jwks_server: JwksServer
) -> None:
    tenant = new_tenant()
    old, new = rsa_key("cooldown-old"), rsa_key("cooldown-new")
    url = jwks_server.serve("/cooldown/jwks.json", old)

    async with serve_app(database_url, AUTH_JWT_JWKS=url) as client:  # the default 30 s cooldown
        before = await Api(client, tenant, old.sign(claims([tenant]))).get("/scripts")
        jwks_server.serve("/cooldown/jwks.json", old, new)
        made_up_kids = [
            jwt.encode(
                claims([tenant]), new.private_key, algorithm="RS256", headers={"kid": uuid.uuid4().hex}
            )
            for _ in range(3)
        ]
        tokens = [new.sign(claims([tenant])), *made_up_kids]
        refused = [await Api(client, tenant, token).get("/scripts") for token in tokens]

    assert before.status_code == 200
    for token, response in zip(tokens, refused, strict=True):
        assert_invalid_token(response, token)
    # Tokens naming made-up key ids cannot make the app hammer the identity provider.
    assert jwks_server.fetches["/cooldown/jwks.json"] == 1


async def test_key_published_for_encryption_never_verifies_a_token(
    database_url: str, tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    tenant = new_tenant()
    signing, encryption = keys["RS256"], rsa_key("enc-1", use="enc")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwk_set(signing, encryption)))
    enc_token = encryption.sign(claims([tenant]))

    async with serve_app(database_url, AUTH_JWT_JWKS=str(path)) as client:
        cold = await Api(client, tenant, enc_token).get("/scripts")  # the set is not cached yet
        assert (await Api(client, tenant, signing.sign(claims([tenant]))).get("/scripts")).status_code == 200
        warm = await Api(client, tenant, enc_token).get("/scripts")  # the set is cached now

    assert_invalid_token(cold, enc_token)
    assert_invalid_token(warm, enc_token)


async def test_an_unreadable_jwk_set_refuses_tokens_instead_of_failing(
    database_url: str, tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    tenant = new_tenant()
    path = tmp_path / "jwks.json"
    path.write_text("{not a JWK set")
    token = keys["RS256"].sign(claims([tenant]))

    async with serve_app(database_url, AUTH_JWT_JWKS=str(path)) as client:
        response = await Api(client, tenant, token).get("/scripts")

    assert_invalid_token(response, token)


# ---- tokens that are refused: 401 invalid_token ----------------------------------------------


async def test_expired_token_is_invalid(hs_http: httpx.AsyncClient) -> None:
    tenant = new_tenant()
    now = int(time.time())
    token = hs256(claims([tenant], iat=now - 600, exp=now - 60))  # twice the 30 s leeway past exp

    assert_invalid_token(await Api(hs_http, tenant, token).get("/scripts"), token)


async def test_token_within_the_leeway_is_accepted(hs_http: httpx.AsyncClient) -> None:
    tenant = new_tenant()
    now = int(time.time())
    just_expired = hs256(claims([tenant], exp=now - 10))
    almost_valid = hs256(claims([tenant], nbf=now + 10))

    assert (await Api(hs_http, tenant, just_expired).get("/scripts")).status_code == 200
    assert (await Api(hs_http, tenant, almost_valid).get("/scripts")).status_code == 200


async def test_token_not_yet_valid_is_invalid(hs_http: httpx.AsyncClient) -> None:
    tenant = new_tenant()
    token = hs256(claims([tenant], nbf=int(time.time()) + 120))

    assert_invalid_token(await Api(hs_http, tenant, token).get("/scripts"), token)


async def test_token_without_exp_is_invalid(
    hs_http: httpx.AsyncClient, file_http: httpx.AsyncClient, keys: dict[str, SigningKey]
) -> None:
    tenant = new_tenant()
    payload = claims([tenant], roles=["admin"])
    del payload["exp"]
    hs_token = hs256(payload)
    rs_token = keys["RS256"].sign(for_issuer(payload))

    assert_invalid_token(await Api(hs_http, tenant, hs_token).get("/scripts"), hs_token)
    assert_invalid_token(await Api(file_http, tenant, rs_token).get("/scripts"), rs_token)


async def test_wrong_issuer_is_invalid(file_http: httpx.AsyncClient, keys: dict[str, SigningKey]) -> None:
    tenant = new_tenant()
    wrong = keys["RS256"].sign({**for_issuer(claims([tenant])), "iss": "https://evil.example/"})
    missing = claims([tenant], aud=AUDIENCE)
    missing_token = keys["RS256"].sign(missing)
    hs_wrong = hs256({**for_issuer(claims([tenant])), "iss": "https://evil.example/"})

    for token in (wrong, missing_token, hs_wrong):
        assert_invalid_token(await Api(file_http, tenant, token).get("/scripts"), token)


async def test_wrong_audience_is_invalid(file_http: httpx.AsyncClient, keys: dict[str, SigningKey]) -> None:
    tenant = new_tenant()
    wrong = keys["ES256"].sign({**for_issuer(claims([tenant])), "aud": "another-api"})
    missing = keys["ES256"].sign(claims([tenant], iss=ISSUER))
    hs_wrong = hs256({**for_issuer(claims([tenant])), "aud": ["another-api", "yet-another"]})

    for token in (wrong, missing, hs_wrong):
        assert_invalid_token(await Api(file_http, tenant, token).get("/scripts"), token)


async def test_unknown_kid_is_invalid(file_http: httpx.AsyncClient) -> None:
    tenant = new_tenant()
    unpublished = rsa_key("not-published")
    token = unpublished.sign(for_issuer(claims([tenant], roles=["admin"])))
    no_kid = jwt.encode(for_issuer(claims([tenant])), unpublished.private_key, algorithm="RS256")

    assert_invalid_token(await Api(file_http, tenant, token).get("/scripts"), token)
    assert_invalid_token(await Api(file_http, tenant, no_kid).get("/scripts"), no_kid)


async def test_token_signed_by_another_key_under_a_published_kid_is_invalid(
    file_http: httpx.AsyncClient,
) -> None:
    tenant = new_tenant()
    impostor = rsa_key("rsa-1")  # the published kid, a key of the attacker's own
    token = impostor.sign(for_issuer(claims([tenant], roles=["admin"])))

    assert_invalid_token(await Api(file_http, tenant, token).get("/scripts"), token)


async def test_unsigned_alg_none_token_is_invalid(
    hs_http: httpx.AsyncClient, file_http: httpx.AsyncClient
) -> None:
    tenant = new_tenant()
    payload = for_issuer(claims([tenant], roles=["admin"]))
    tokens = [hand_made({"alg": alg, "typ": "JWT"}, payload) for alg in ("none", "None", "NONE", "nOnE")] + [
        hand_made({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, payload)
    ]

    for client in (hs_http, file_http):
        for token in tokens:
            assert_invalid_token(await Api(client, tenant, token).get("/scripts"), token)


async def test_hmac_signed_token_claiming_rs256_is_invalid(
    file_http: httpx.AsyncClient, keys: dict[str, SigningKey]
) -> None:
    tenant = new_tenant()
    payload = for_issuer(claims([tenant], roles=["admin"]))
    header = {"alg": "RS256", "typ": "JWT", "kid": keys["RS256"].kid}
    tokens = [
        # Signed with the HS256 secret the app holds, the header claiming RS256.
        hmac_signed(header, payload, SECRET.encode()),
        hmac_signed({"alg": "RS256", "typ": "JWT"}, payload, SECRET.encode()),
        # The classic confusion: HMAC over the published RSA public key.
        hmac_signed(header, payload, keys["RS256"].public_pem()),
    ]
    # The same payload really signed with HS256 is accepted: only the header's lie is refused.
    honest = hs256(payload)

    for token in tokens:
        assert_invalid_token(await Api(file_http, tenant, token).get("/scripts"), token)
    assert (await Api(file_http, tenant, honest).get("/scripts")).status_code == 200


def tampered(token: str, **changes: Any) -> str:
    """The token with claims changed in its payload, its header and signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    return f"{header}.{b64url_json({**claims, **changes})}.{signature}"


async def test_tampered_payload_is_invalid(
    hs_http: httpx.AsyncClient, file_http: httpx.AsyncClient, keys: dict[str, SigningKey]
) -> None:
    tenant, other = new_tenant(), new_tenant()
    hs_token = hs256(claims([tenant], sub="jwt-viewer", roles=["viewer"]))
    rs_token = keys["RS256"].sign(for_issuer(claims([tenant], sub="jwt-viewer", roles=["viewer"])))
    cases = [
        (hs_http, hs_token, tampered(hs_token, roles=["admin"])),
        (hs_http, hs_token, tampered(hs_token, tenants=[tenant, other])),
        (hs_http, hs_token, tampered(hs_token, sub="someone-else")),
        (file_http, rs_token, tampered(rs_token, roles=["admin"])),
        (file_http, rs_token, tampered(rs_token, exp=int(time.time()) + 86_400)),
    ]

    for client, genuine, forged in cases:
        assert (await Api(client, tenant, genuine).get("/scripts")).status_code == 200
        assert_invalid_token(await Api(client, tenant, forged).get("/scripts"), forged)


# ---- nothing of a token is logged ------------------------------------------------------------


async def test_tokens_are_never_logged(
    hs_http: httpx.AsyncClient,
    file_http: httpx.AsyncClient,
    keys: dict[str, SigningKey],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The apps were built (and logging configured, create_app -> configure_logging) before this
    # test's call phase, so caplog's handler sits on the root logger next to the app's own.
    caplog.set_level(logging.DEBUG)
    tenant, other = new_tenant(), new_tenant()
    now = int(time.time())
    viewer = hs256(claims([tenant], roles=["viewer"]))
    requests = [
        (hs_http, hs256(claims([tenant], exp=now - 600))),  # expired
        (hs_http, hs256(claims([tenant], nbf=now + 600))),  # not yet valid
        (hs_http, tampered(viewer, roles=["admin"])),  # tampered
        (hs_http, hand_made({"alg": "none"}, claims([tenant]))),  # unsigned
        (hs_http, hs256(claims([tenant]), secret=SECRET[::-1])),  # another secret
        (hs_http, hs256(claims([other], roles=["admin"]))),  # 403 TENANT_FORBIDDEN
        (hs_http, viewer),  # 403 FORBIDDEN on POST
        (file_http, rsa_key("not-published").sign(for_issuer(claims([tenant])))),  # unknown kid
        (file_http, keys["EdDSA"].sign({**for_issuer(claims([tenant])), "iss": "https://evil/"})),
        (file_http, hmac_signed({"alg": "RS256", "kid": "rsa-1"}, claims([tenant]), SECRET.encode())),
    ]

    statuses = []
    for client, token in requests:
        response = await Api(client, tenant, token).post("/scripts", json={"name": "Log", "slug": "log"})
        statuses.append(response.status_code)

    assert statuses == [401] * 5 + [403, 403] + [401] * 3
    app_formatter = next(
        handler.formatter
        for handler in logging.getLogger().handlers
        if isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter)
    )
    # What the app writes (its own formatter), and everything any record carries.
    logged = "\n".join(
        [
            caplog.text,
            *(app_formatter.format(record) for record in caplog.records),
            *(repr(record.__dict__) for record in caplog.records),
        ]
    )
    access_lines = [r for r in caplog.records if r.name == "app.access"]
    assert len(access_lines) >= len(requests), "the requests were logged, so the check means something"
    for _, token in requests:
        _header, payload, signature = token.split(".")
        assert token not in logged
        assert payload not in logged
        assert not signature or signature not in logged
