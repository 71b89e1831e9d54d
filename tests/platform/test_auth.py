"""API keys and JWTs, roles → permissions, 401/403 as problem+json."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.routing import APIRoute

from billing.auth.permissions import ROLE_PERMISSIONS, Permission, Role
from tests.conftest import AppFactory, Sql, http_client, new_api_key


async def test_missing_key_is_401(anon_client: httpx.AsyncClient) -> None:
    response = await anon_client.get("/v1/api-keys")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "unauthenticated"


@pytest.mark.parametrize(
    "header", ["Bearer bk_not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer ", "bk_no_scheme"]
)
async def test_bad_credentials_are_401(app: FastAPI, header: str) -> None:
    async with http_client(app) as c:
        response = await c.get("/v1/api-keys", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


async def test_keys_are_stored_hashed(client: httpx.AsyncClient, sql: Sql) -> None:
    created = (await client.post("/v1/api-keys", json={"role": "support_rep", "name": "n"})).json()
    secret = created["secret"]
    assert secret.startswith("bk_")
    rows = await sql("SELECT secret_hash, prefix FROM api_keys")
    assert all(secret not in (row.secret_hash, row.prefix) for row in rows)
    listed = (await client.get("/v1/api-keys")).json()["data"]
    assert all("secret" not in k for k in listed)


async def test_revoked_key_is_401(client: httpx.AsyncClient, app: FastAPI) -> None:
    created = (await client.post("/v1/api-keys", json={"role": "support_rep", "name": "n"})).json()
    async with http_client(app, created["secret"]) as c:
        assert (await c.get("/health/ready")).status_code == 200
        revoke = await client.delete(f"/v1/api-keys/{created['id']}")
        assert revoke.json()["revoked_at"] is not None
        assert (await c.get("/v1/api-keys")).status_code == 401


# The endpoint needs api_keys:write, which only super_admin holds.
@pytest.mark.parametrize(
    ("role", "status"),
    [
        (Role.SUPER_ADMIN, 200),
        (Role.BILLING_ADMIN, 403),
        (Role.SUPPORT_REP, 403),
        (Role.FINANCE_VIEWER, 403),
    ],
)
async def test_permission_per_role(app: FastAPI, role: Role, status: int) -> None:
    async with http_client(app, await new_api_key(app, role)) as c:
        response = await c.get("/v1/api-keys")
    assert response.status_code == status
    if status == 403:
        body = response.json()
        assert body["code"] == "forbidden"
        assert body["required_permission"] == "api_keys:write"


def test_role_table() -> None:
    assert ROLE_PERMISSIONS[Role.SUPER_ADMIN] == frozenset(Permission)
    assert Permission.API_KEYS_WRITE not in ROLE_PERMISSIONS[Role.BILLING_ADMIN]
    assert all(p.value.endswith(":read") for p in ROLE_PERMISSIONS[Role.FINANCE_VIEWER])
    assert Permission.INVOICES_WRITE not in ROLE_PERMISSIONS[Role.SUPPORT_REP]
    assert Permission.ACCOUNTS_WRITE in ROLE_PERMISSIONS[Role.SUPPORT_REP]


PUBLIC_PATHS = {
    "/health",
    "/health/ready",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/webhooks/stripe",  # verified by its Stripe-Signature instead
}


def test_every_api_route_declares_a_permission(app: FastAPI) -> None:
    missing = []
    for route in app.routes:
        if not isinstance(route, APIRoute) or route.path in PUBLIC_PATHS:
            continue
        declared = [
            getattr(dep.call, "required_permission", None) for dep in route.dependant.dependencies
        ]
        if not any(declared):
            missing.append(f"{sorted(route.methods or ())} {route.path}")
    assert missing == []


def _rsa_keypair() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


async def test_jwt_bearer_tokens(make_app: AppFactory) -> None:
    private, public = _rsa_keypair()
    other_private, _ = _rsa_keypair()
    app = make_app(jwt_public_key=public, jwt_audience="billing")

    def token(
        role: str, *, key: bytes = private, exp: float | None = None, aud: str = "billing"
    ) -> str:
        claims = {
            "sub": "ops@example.com",
            "role": role,
            "aud": aud,
            "exp": int(exp if exp is not None else time.time() + 300),
        }
        return jwt.encode(claims, key, algorithm="RS256")

    async def status(tok: str) -> int:
        async with http_client(app, tok) as c:
            return (await c.get("/v1/api-keys")).status_code

    assert await status(token("super_admin")) == 200
    assert await status(token("finance_viewer")) == 403
    assert await status(token("super_admin", key=other_private)) == 401
    assert await status(token("super_admin", exp=time.time() - 10)) == 401
    assert await status(token("super_admin", aud="someone-else")) == 401
    assert await status(token("emperor")) == 401
