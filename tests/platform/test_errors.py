"""Every error is RFC 9457 problem+json, with a stable code and the request id."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import AppFactory, http_client, log_lines, new_api_key

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_unknown_route_is_404(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/v1/nothing-here"), 404, "not_found")
    assert "/v1/nothing-here" in str(body["detail"])


async def test_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    assert_problem(await client.put("/v1/api-keys", json={}), 405, "method_not_allowed")


async def test_validation_error_is_422_naming_each_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/api-keys", json={"role": "emperor", "name": ""})
    body = assert_problem(response, 422, "validation_error")
    fields = {e["field"] for e in body["errors"]}  # type: ignore[attr-defined]
    assert fields == {"role", "name"}
    assert body["param"] in fields


async def test_unknown_field_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/api-keys", json={"role": "support_rep", "name": "x", "colour": "red"}
    )
    body = assert_problem(response, 422, "validation_error")
    assert body["param"] == "colour"


async def test_bad_query_parameter_is_422(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/v1/api-keys?limit=1000"), 422, "validation_error")
    assert body["param"] == "limit"


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/api-keys", content=b'{"role": ', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "malformed_request")


async def test_oversized_body_is_413_and_nothing_is_written(make_app: AppFactory) -> None:
    app = make_app(max_request_bytes=2048)
    secret = await new_api_key(app)
    async with http_client(app, secret) as c:
        big = {"role": "support_rep", "name": "x" * 4000}
        response = await c.post("/v1/api-keys", json=big)
        assert_problem(response, 413, "payload_too_large")

        # Also when the client streams without announcing a length.
        async def chunks() -> object:
            for _ in range(4):
                yield b"x" * 1000

        streamed = await c.post("/v1/api-keys", content=chunks())  # type: ignore[arg-type]
        assert_problem(streamed, 413, "payload_too_large")
        keys = (await c.get("/v1/api-keys")).json()["data"]
    assert len(keys) == 1  # only the key the test made


async def test_unexpected_exception_is_500_with_request_id_only(
    make_app: AppFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    app = make_app()

    async def explode() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", explode)
    async with http_client(app) as c:
        response = await c.get("/boom", headers={"X-Request-ID": "req-500"})
    body = assert_problem(response, 500, "internal_error")
    assert body["request_id"] == "req-500"
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
    # The trace goes to the log, bound to the request.
    [line] = [e for e in log_lines(capfd) if e["event"] == "unhandled_error"]
    assert line["request_id"] == "req-500"
    assert line["path"] == "/boom"
    assert "secret internals" in str(line["exception"])


async def test_domain_not_found_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/v1/api-keys/00000000-0000-0000-0000-000000000000")
    assert_problem(response, 404, "not_found")


async def test_path_parameter_of_the_wrong_type_is_422(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.delete("/v1/api-keys/not-a-uuid"), 422, "validation_error")
    assert body["param"] == "key_id"


async def test_openapi_documents_the_api(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/api-keys" in spec["paths"]
    docs = await client.get("/docs")
    assert docs.status_code == 200
