"""Start a real `billing serve` for a benchmark: given or embedded PostgreSQL, loopback only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

BILLING = str(Path(sys.executable).with_name("billing"))


@dataclass(frozen=True)
class Server:
    base_url: str
    api_key: str
    env: dict[str, str]
    pid: int = 0

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header of the server's API key."""
        return {"Authorization": f"Bearer {self.api_key}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health/ready", timeout=1).status_code == 200
    except httpx.HTTPError:  # not listening yet
        return False


@contextmanager
def running_server(
    *, database_url: str | None, workers: int, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Serve on a free loopback port; with no database_url, an embedded PostgreSQL in a temp dir."""
    with tempfile.TemporaryDirectory(prefix="billing-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
        env.update(
            {
                "BILLING_DATA_DIR": str(Path(tmp) / "data"),
                "LOG_FORMAT": "json",
                "RATE_LIMIT_PER_HOUR": "100000000",
            }
        )
        if database_url:
            env["DATABASE_URL"] = database_url
        env.update(extra_env or {})
        migrated = subprocess.run([BILLING, "migrate"], env=env, capture_output=True, check=False)
        if migrated.returncode != 0:
            raise SystemExit(migrated.stdout.decode() + migrated.stderr.decode())
        created = subprocess.run(
            [BILLING, "apikey", "create", "--role", "super_admin", "--name", "bench"],
            env=env,
            capture_output=True,
            check=True,
        )
        # The secret is the last line: log lines (the embedded server starting) may precede it.
        key = created.stdout.decode().strip().splitlines()[-1]
        port = _free_port()
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [BILLING, "serve", "--port", str(port), "--workers", str(workers), "--no-worker"],
                env=env,
                stdout=log,
                stderr=log,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise SystemExit(log_path.read_text())
                if _ready(base):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("server not ready in 60 s:\n" + log_path.read_text())
                time.sleep(0.2)
            yield Server(base_url=base, api_key=key, env=env, pid=proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def server_database(server: Server, database_url: str | None) -> Iterator[str]:
    """The URL of the server's database: the given one, or its embedded PostgreSQL, joined
    for the duration (and left before the server stops, so that the server's exit stops it)."""
    if database_url is not None:
        yield database_url
        return
    from billing.db.embedded import DATABASE_NAME, embedded_server, release_embedded, server_url

    data_dir = Path(server.env["BILLING_DATA_DIR"])
    try:
        yield server_url(embedded_server(data_dir), DATABASE_NAME)
    finally:
        release_embedded(data_dir)
