"""JSONB values read back exactly, big integers included."""

from __future__ import annotations

from typing import Any

import pytest

from billing.db.engine import json_loads
from tests.conftest import Sql


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1, "b": [1.5, "x"]}', {"a": 1, "b": [1.5, "x"]}),
        ('{"big": 18446744073709551616}', {"big": 18446744073709551616}),
        ('{"id": "1234567890123456789012"}', {"id": "1234567890123456789012"}),
        ("[-9223372036854775809]", [-9223372036854775809]),
    ],
)
def test_json_loads_is_exact(text: str, expected: Any) -> None:
    assert json_loads(text) == expected
    assert json_loads(text.encode()) == expected


async def test_a_big_integer_survives_a_round_trip_through_jsonb(sql: Sql) -> None:
    await sql(
        "INSERT INTO events (id, type, data, created_at) VALUES "
        "(gen_random_uuid(), 'account.updated', CAST(:data AS jsonb), now())",
        data='{"n": 123456789012345678901234567890, "small": 7}',
    )
    [row] = await sql("SELECT data FROM events")  # decoded by the engine, as the app does
    assert row.data == {"n": 123456789012345678901234567890, "small": 7}
