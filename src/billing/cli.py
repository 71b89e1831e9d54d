"""The `billing` command: serve, worker, migrate, apikey, version."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from typing import TYPE_CHECKING, Annotated

import typer

from billing import __version__, heap
from billing.auth.permissions import Role
from billing.observability.logging import configure_logging, get_logger
from billing.settings import Settings, get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

app = typer.Typer(help="Subscription billing engine.", no_args_is_help=True, add_completion=False)
apikey_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")

log = get_logger("billing.cli")


def _database_url(settings: Settings) -> str:
    if settings.database_url is not None:
        return settings.database_url
    from billing.db.embedded import start_embedded

    log.info("embedded_postgres_starting", data_dir=str(settings.billing_data_dir.resolve()))
    return start_embedded(settings.billing_data_dir)


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _migrate_or_exit(url: str) -> None:
    from billing.db.migrate import upgrade

    try:
        asyncio.run(upgrade(url))
    except Exception as exc:
        if _is_connection_error(exc):
            _database_unreachable(url, exc)
        raise


def _is_connection_error(exc: BaseException) -> bool:
    import asyncpg
    from sqlalchemy.exc import InterfaceError, OperationalError

    chain: BaseException | None = exc
    while chain is not None:
        if isinstance(
            chain,
            OSError  # ConnectionError included
            | OperationalError
            | InterfaceError
            | asyncpg.PostgresConnectionError
            | asyncpg.InvalidCatalogNameError
            | asyncpg.InvalidAuthorizationSpecificationError,
        ):
            return True
        chain = chain.__cause__ or chain.__context__
    return False


def _database_unreachable(url: str, exc: BaseException) -> None:
    log.error(
        "database_unreachable",
        database_url=_safe(url),
        error=f"{type(exc).__name__}: {exc}",
        hint="Check DATABASE_URL, or unset it to use the embedded PostgreSQL.",
    )
    raise typer.Exit(code=1)


async def _bootstrap_admin_key(url: str) -> str | None:
    from sqlalchemy import text

    from billing.auth.keys import count_api_keys
    from billing.auth.service import issue_key
    from billing.db.engine import create_session_factory, one_off_engine

    async with one_off_engine(url) as engine, create_session_factory(engine)() as session:
        # Serialize concurrent first starts so only one key is created.
        await session.execute(text("SELECT pg_advisory_xact_lock(7246002)"))
        if await count_api_keys(session):
            return None
        _, secret = await issue_key(session, role=Role.SUPER_ADMIN, name="bootstrap")
        return secret


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Server processes (WEB_CONCURRENCY).", min=1)
    ] = None,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Do not run the billing worker in-process.")
    ] = False,
) -> None:
    """Migrate the database and serve the API (with the billing worker in-process)."""
    import uvicorn

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    url = _database_url(settings)
    _migrate_or_exit(url)
    bootstrap = (
        settings.embedded if settings.bootstrap_admin_key is None else settings.bootstrap_admin_key
    )
    if bootstrap:
        secret = asyncio.run(_bootstrap_admin_key(url))
        if secret is not None:
            typer.echo(
                "\n  A super_admin API key was created for this new database. It is shown once:\n"
                f"\n      {secret}\n\n"
                "  Use it as `Authorization: Bearer <key>`; create more with "
                "`billing apikey create`.\n",
                err=True,
            )

    processes = workers or settings.web_concurrency
    os.environ["DATABASE_URL"] = url
    os.environ["RUN_WORKER"] = "false" if no_worker else str(settings.run_worker).lower()
    if settings.embedded and settings.test_clocks_enabled is None:
        os.environ["TEST_CLOCKS_ENABLED"] = "true"
    if processes > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="billing-metrics-")
    get_settings.cache_clear()
    bind_host = host or settings.host
    bind_port = port or settings.port
    log.info("serving", url=f"http://{bind_host}:{bind_port}", docs="/docs", workers=processes)
    # After its graceful shutdown uvicorn re-raises SIGTERM to the handler installed before it
    # ran; the default one would end the process without exit handlers, leaving the embedded
    # PostgreSQL running. Exiting through Python runs them.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "billing.cli:serving_app",
        factory=True,
        host=bind_host,
        port=bind_port,
        workers=processes,
        log_config=None,
        access_log=False,
        server_header=False,
    )


def serving_app() -> FastAPI:
    """The app each server process runs (uvicorn calls this factory in every worker)."""
    from billing.app import create_app

    return create_app()  # its start-up settles the heap (`heap.settle`)


@app.command()
def worker() -> None:
    """Run the billing worker (the billing clock) until SIGTERM/SIGINT."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    url = _database_url(settings)
    if settings.embedded:
        _migrate_or_exit(url)

    async def main() -> None:
        from billing.runtime import Runtime

        runtime = Runtime.build(settings, url)
        heap.settle()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await runtime.worker().run_forever(stop)
        finally:
            await runtime.close()

    try:
        asyncio.run(main())
    except Exception as exc:
        if _is_connection_error(exc):
            _database_unreachable(url, exc)
        raise


@app.command()
def migrate() -> None:
    """Apply database migrations (alembic upgrade head)."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    url = _database_url(settings)
    _migrate_or_exit(url)
    log.info("migrated", database_url=_safe(url))


@apikey_app.command("create")
def apikey_create(
    role: Annotated[Role, typer.Option(help="The key's role.", case_sensitive=False)],
    name: Annotated[str, typer.Option(help="A label to recognise the key by.")] = "cli",
) -> None:
    """Create an API key and print its secret (shown once)."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    url = _database_url(settings)
    _migrate_or_exit(url)

    async def create() -> str:
        from billing.auth.service import issue_key
        from billing.db.engine import create_session_factory, one_off_engine

        async with one_off_engine(url) as engine, create_session_factory(engine)() as session:
            _, secret = await issue_key(session, role=role, name=name)
            return secret

    typer.echo(asyncio.run(create()))


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()
