"""Shared fixtures: a migrated database per xdist worker, the app, HTTP clients, the worker.

Each test starts from empty tables (truncated after every test), talks to the app over an
in-process HTTP transport, and runs due worker work explicitly with `worker.run_due()`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from billing.app import create_app
from billing.auth.keys import create_api_key
from billing.auth.permissions import Role
from billing.clock import Clock
from billing.runtime import Runtime
from billing.settings import Settings
from billing.worker.runner import Worker
from tests import database
from tests.stripe_server import StripeFake

os.environ.setdefault("LOG_FORMAT", "json")


def pytest_configure(config: pytest.Config) -> None:
    # Set before xdist spawns workers, so every worker shares the run id.
    database.run_id()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return
    try:
        asyncio.run(database.drop_run_databases(database.admin_url()))
    except Exception as exc:  # never hide the test result behind a cleanup failure
        print(f"warning: could not drop test databases: {exc}")


@pytest.fixture(scope="session")
def admin_url() -> str:
    return database.admin_url()


@pytest.fixture(scope="session")
def worker_name(request: pytest.FixtureRequest) -> str:
    workerinput: dict[str, Any] | None = getattr(request.config, "workerinput", None)
    return workerinput["workerid"] if workerinput else "main"


@pytest.fixture(scope="session")
async def database_url(admin_url: str, worker_name: str) -> AsyncIterator[str]:
    template = await database.ensure_template(admin_url)
    name = database.worker_db_name(worker_name)
    url = await database.create_database(admin_url, name, template=template)
    yield url
    await database.drop_database(admin_url, name)


def test_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "log_format": "json",
        "run_worker": False,
        "rate_limit_per_hour": 100_000,
        "test_clocks_enabled": True,
        "api_key_cache_seconds": 0,
        "redis_url": None,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


AppFactory = Callable[..., FastAPI]


@pytest.fixture(scope="session")
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(test_settings(), database_url=database_url, run_worker=False)
    yield application
    await runtime_of(application).close()


@pytest.fixture
async def make_app(database_url: str) -> AsyncIterator[AppFactory]:
    """Build an app with other settings (closed at the end of the test)."""
    built: list[FastAPI] = []

    def factory(*, url: str | None = None, clock: Clock | None = None, **overrides: Any) -> FastAPI:
        application = create_app(
            test_settings(**overrides),
            database_url=url or database_url,
            clock=clock,
            run_worker=False,
        )
        built.append(application)
        return application

    yield factory
    for application in built:
        await runtime_of(application).close()


def runtime_of(application: FastAPI) -> Runtime:
    runtime: Runtime = application.state.runtime
    return runtime


@pytest.fixture
def runtime(app: FastAPI) -> Runtime:
    return runtime_of(app)


@pytest.fixture(autouse=True)
async def _clean_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if "database_url" not in request.fixturenames:
        return
    url: str = request.getfixturevalue("database_url")
    from billing.db.engine import raw_connect

    conn = await raw_connect(url)
    try:
        await conn.execute(database.truncate_statement())
    finally:
        await conn.close()
    if "app" in request.fixturenames:
        limiter = runtime_of(request.getfixturevalue("app")).rate_limiter
        if limiter is not None:
            await limiter.reset()


ApiKeyFactory = Callable[..., Awaitable[str]]


async def new_api_key(application: FastAPI, role: Role = Role.SUPER_ADMIN) -> str:
    async with runtime_of(application).sessions() as session:
        _, secret = await create_api_key(session, role=role, name=f"test-{role.value}")
        await session.commit()
    return secret


def http_client(application: FastAPI, secret: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application),
        base_url="http://billing.test",
        headers=headers,
    )


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client authenticated as super_admin."""
    async with http_client(app, await new_api_key(app)) as c:
        yield c


@pytest.fixture
async def anon_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(app) as c:
        yield c


@pytest.fixture
def worker(runtime: Runtime) -> Worker:
    return runtime.worker()


Sql = Callable[..., Awaitable[list[Any]]]


@pytest.fixture
def sql(runtime: Runtime) -> Sql:
    """Run raw SQL against the test database (assertions on stored state, or tampering)."""

    async def run(statement: str, **params: Any) -> list[Any]:
        async with runtime.engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []

    return run


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A real Redis: REDIS_URL (CI sets it), else one on 127.0.0.1:6379 if it answers.

    A machine with neither reports these tests as skipped, with this reason; the in-memory
    backends are tested everywhere.
    """
    import socket

    url = os.environ.get("REDIS_URL", "").strip() or "redis://127.0.0.1:6379/0"
    parsed = httpx.URL(url.replace("redis://", "http://", 1))
    try:
        socket.create_connection((parsed.host, parsed.port or 6379), timeout=0.5).close()
    except OSError:
        pytest.skip(f"no Redis server at {url}: set REDIS_URL to run the Redis-backed tests")
    return url


@contextmanager
def worker_process(
    database_url: str, log_path: Path, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A real `billing worker` process on `database_url` (JSON logs, no Redis, `env` on top),
    writing stdout and stderr to `log_path`; killed on exit if it still runs."""
    environ = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "BILLING_DATA_DIR"}}
    environ.update({"DATABASE_URL": database_url, "LOG_FORMAT": "json"} | env)
    billing = str(Path(sys.executable).with_name("billing"))
    with log_path.open("wb") as log:
        proc = subprocess.Popen([billing, "worker"], env=environ, stdout=log, stderr=log)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert a problem+json answer with this status and code; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def stripe_fake() -> Iterator[StripeFake]:
    """A local Stripe API fake (tests/stripe_server.py), running for the test."""
    with StripeFake() as server:
        yield server


@pytest.fixture
def fake(stripe_fake: StripeFake) -> StripeFake:
    """`stripe_fake` under the short name the payment and tax tests use."""
    return stripe_fake


def log_lines(capfd: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The JSON log lines the process wrote to stdout during the test so far."""
    import json

    out = capfd.readouterr().out
    lines = []
    for raw in out.splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines
