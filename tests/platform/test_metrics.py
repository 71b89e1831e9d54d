from __future__ import annotations

import httpx


async def test_metrics_expose_the_named_series(client: httpx.AsyncClient) -> None:
    await client.get("/v1/api-keys")
    await client.delete("/v1/api-keys/not-a-uuid")
    await client.get("/v1/missing")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'api_request_duration_seconds_bucket{le="0.05",method="GET",route="/v1/api-keys",'
        'status="200"}' in text
    )
    assert 'api_requests_total{method="GET",route="/v1/api-keys",status="200"}' in text
    assert 'api_errors_total{method="DELETE",route="/v1/api-keys/{key_id}",status="422"}' in text
    # Unknown paths share one label value, so clients cannot create unbounded series.
    assert 'api_errors_total{method="GET",route="unmatched",status="404"}' in text
    for gauge in ("db_pool_size", "db_pool_checked_out", "db_pool_checked_in", "db_pool_overflow"):
        assert f"# TYPE {gauge} gauge" in text
