"""Structured request logs, with the request id bound to every line of the request."""

from __future__ import annotations

import httpx
import pytest

from billing.observability.logging import get_logger
from tests.conftest import AppFactory, http_client, log_lines


async def test_every_request_is_logged_with_its_fields(
    client: httpx.AsyncClient, capfd: pytest.CaptureFixture[str]
) -> None:
    response = await client.get("/v1/api-keys", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    [line] = [e for e in log_lines(capfd) if e["event"] == "request"]
    assert line["request_id"] == "abc-123"
    assert line["method"] == "GET"
    assert line["path"] == "/v1/api-keys"
    assert line["route"] == "/v1/api-keys"
    assert line["status_code"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "info"
    assert "timestamp" in line


async def test_request_id_is_generated_when_absent_or_invalid(
    client: httpx.AsyncClient,
) -> None:
    generated = (await client.get("/health")).headers["x-request-id"]
    assert len(generated) == 32
    replaced = await client.get("/health", headers={"X-Request-ID": "bad id; DROP"})
    assert len(replaced.headers["x-request-id"]) == 32


async def test_lines_logged_inside_a_request_carry_its_request_id(
    make_app: AppFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    app = make_app()
    log = get_logger("billing.test")

    async def handler() -> dict[str, str]:
        log.info("inside_handler", detail="deep in a service")
        return {"ok": "yes"}

    app.add_api_route("/inside", handler)
    async with http_client(app) as c:
        await c.get("/inside", headers={"X-Request-ID": "trace-me"})
        await c.get("/inside", headers={"X-Request-ID": "second"})
    inside = [e for e in log_lines(capfd) if e["event"] == "inside_handler"]
    assert [e["request_id"] for e in inside] == ["trace-me", "second"]
