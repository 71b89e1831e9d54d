"""Durations written the way people write them in settings: `5s`, `5m`, `2h`, `3d`, `250ms`."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(text: str) -> float:
    """Seconds in one duration such as `30m`. Raises ValueError on anything else."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 5s, 5m, 2h or 1d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_durations(text: str) -> tuple[float, ...]:
    """Seconds in a comma-separated list of durations (`5s,5m,30m`); empty gives ()."""
    if not text.strip():
        return ()
    return tuple(parse_duration(part) for part in text.split(","))
