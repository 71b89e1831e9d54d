"""The `billing` command, run as a real process against a real server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests import database
from tests.conftest import free_port

BILLING = str(Path(sys.executable).with_name("billing"))
KEY_PATTERN = re.compile(r"bk_[A-Za-z0-9_\-]{20,}")


def env(**values: str) -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "BILLING_DATA_DIR", "PORT", "HOST"}
    }
    base.update({"LOG_FORMAT": "json", "WORKER_TICK_SECONDS": "0.5"})
    base.update(values)
    return base


def ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health/ready", timeout=1).status_code == 200
    except httpx.HTTPError:  # not listening yet
        return False


@contextmanager
def serving(
    environment: dict[str, str], log: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [BILLING, "serve", "--port", str(port)], env=environment, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            if ready(base):
                break
            assert time.monotonic() < deadline, f"not ready within 30 s:\n{log.read_text()}"
            time.sleep(0.2)
        yield base, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def test_every_subcommand_has_help() -> None:
    for args in (
        ["--help"],
        ["serve", "--help"],
        ["worker", "--help"],
        ["migrate", "--help"],
        ["apikey", "create", "--help"],
        ["version", "--help"],
    ):
        result = subprocess.run([BILLING, *args], capture_output=True, env=env(), check=False)
        assert result.returncode == 0, (args, result.stderr)
        assert b"Usage" in result.stdout
    version = subprocess.run([BILLING, "version"], capture_output=True, env=env(), check=True)
    assert version.stdout.strip() == b"0.1.0"


def test_unreachable_database_is_one_clear_line_and_exit_1() -> None:
    result = subprocess.run(
        [BILLING, "migrate"],
        capture_output=True,
        env=env(DATABASE_URL="postgresql://postgres@127.0.0.1:9/billing"),
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    output = (result.stdout + result.stderr).decode()
    assert "database_unreachable" in output
    assert "Traceback" not in output
    assert len([line for line in output.splitlines() if line.strip()]) == 1


@pytest.fixture
async def fresh_db(admin_url: str) -> object:
    # Unique per use: tests on other xdist workers create theirs at the same time.
    name = f"{database.PREFIX}{database.run_id()}_cli_{uuid.uuid4().hex[:8]}"
    url = await database.create_database(admin_url, name)
    yield url
    await database.drop_database(admin_url, name)


def test_serve_migrates_and_apikey_create_works_against_it(fresh_db: str, tmp_path: Path) -> None:
    environment = env(DATABASE_URL=fresh_db)
    with serving(environment, tmp_path / "serve.log") as (base, _):
        # External database: no bootstrap key is made, keys come from the CLI.
        assert not KEY_PATTERN.search((tmp_path / "serve.log").read_text())
        created = subprocess.run(
            [BILLING, "apikey", "create", "--role", "billing_admin", "--name", "ops"],
            capture_output=True,
            env=environment,
            check=True,
            timeout=60,
        )
        secret = created.stdout.decode().strip()
        assert KEY_PATTERN.fullmatch(secret)
        headers = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(f"{base}/v1/api-keys", headers=headers).status_code == 403
        assert httpx.get(f"{base}/health", headers=headers).status_code == 200
        metrics = httpx.get(f"{base}/metrics").text
        assert "api_request_duration_seconds_bucket" in metrics
        docs = httpx.get(f"{base}/docs")
        assert docs.status_code == 200


def test_embedded_quick_start_survives_a_restart(tmp_path: Path) -> None:
    environment = env(BILLING_DATA_DIR=str(tmp_path / "data"))
    with serving(environment, tmp_path / "first.log") as (base, _):
        match = KEY_PATTERN.search((tmp_path / "first.log").read_text())
        assert match, "the first start prints a super_admin key"
        secret = match.group(0)
        headers = {"Authorization": f"Bearer {secret}"}
        made = httpx.post(
            f"{base}/v1/api-keys", headers=headers, json={"role": "finance_viewer", "name": "kept"}
        )
        assert made.status_code == 201
    with serving(environment, tmp_path / "second.log") as (base, _):
        assert not KEY_PATTERN.search((tmp_path / "second.log").read_text())
        listed = httpx.get(f"{base}/v1/api-keys", headers=headers).json()["data"]
        assert sorted(k["name"] for k in listed) == ["bootstrap", "kept"]
    # Stopping the server stops its embedded PostgreSQL too.
    assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()


def test_traces_are_exported_when_an_exporter_is_configured(fresh_db: str, tmp_path: Path) -> None:
    environment = env(DATABASE_URL=fresh_db, OTEL_TRACES_EXPORTER="console", RUN_WORKER="false")
    log = tmp_path / "serve.log"
    with serving(environment, log) as (base, _):
        httpx.get(f"{base}/v1/api-keys", headers={"X-Request-ID": "traced"})
    # The console exporter prints each span as JSON when the batch is flushed at shutdown.
    output = log.read_text()
    assert '"name": "GET /v1/api-keys"' in output
    assert '"service.name": "billing"' in output
    assert "SELECT" in output  # a SQLAlchemy span from the readiness check
