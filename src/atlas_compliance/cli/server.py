"""`serve` and `db upgrade`."""

from __future__ import annotations

import asyncio
import contextlib

import typer

from ..audit import checkpoints, signing
from ..config import get_settings
from ..db import migrate
from ..errors import AtlasError
from ..flags import schedule as flag_schedule
from ..logging import configure_logging
from ..reviews import schedule as review_schedule
from ..runtime import database_url, open_database
from .common import console, fail

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(db_app, name="db")


def serve(host: str = typer.Option(None, help="Interface to bind (default ATLAS_HOST or 127.0.0.1)."),
          port: int = typer.Option(None, help="Port (default ATLAS_PORT or 8000).")) -> None:
    """Serve the API and the admin console. Applies pending migrations first.

    In the background, writes a signed checkpoint of every organization's chains at start and every
    ATLAS_CHECKPOINT_INTERVAL seconds (default 3600) into ATLAS_CHECKPOINT_DIR (default
    ATLAS_DATA_DIR/checkpoints), opens the access reviews that schedules made due, and evaluates every
    organization's unusual-access flags for yesterday and today (UTC), at start and every hour.
    """
    settings = get_settings()
    configure_logging(settings.log_level)
    host = host or settings.host
    port = port or settings.port
    try:
        serve_forever(settings, host, port)
    except AtlasError as exc:
        fail(exc.message)


def _server_class():
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """Uvicorn re-raises SIGTERM/SIGINT after shutting down, which would kill the process before the
        embedded PostgreSQL is stopped; here the signal only ends serving and cleanup runs normally."""

        def handle_exit(self, sig, frame) -> None:
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

    return GracefulServer


def serve_forever(settings, host: str, port: int, banner=None) -> None:
    """Run uvicorn until interrupted; the embedded database (if any) stops cleanly afterwards."""
    import uvicorn

    from ..app import create_app

    async def main() -> None:
        with database_url(settings, exclusive=True) as url:
            async with open_database(url, settings) as db:
                floor = migrate.apply_retention_floor(url, settings.min_retention_days,
                                                      settings.min_hard_delete_delay_days)
                if floor.note:
                    console.print(f"warning: {floor.note}", highlight=False)
                app = create_app(db, settings)
                # proxy_headers off: uvicorn would otherwise believe X-Forwarded-For from any loopback
                # peer; the app trusts it only from ATLAS_TRUSTED_PROXIES (api.deps.client_ip).
                config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                        lifespan="on", proxy_headers=False)
                server = _server_class()(config)
                if banner is not None:
                    await banner(db, host, port)
                else:
                    where = "embedded PostgreSQL" if not settings.database_url else "DATABASE_URL"
                    console.print(f"Atlas Compliance on http://{host}:{port}  (database: {where}; "
                                  f"API docs http://{host}:{port}/docs)")
                # Signed checkpoints of every org's chains, every ATLAS_CHECKPOINT_INTERVAL seconds.
                task = asyncio.create_task(checkpoints.run_periodically(
                    db, settings, lambda: signing.load_signing_key(settings)), name="atlas-checkpoints")
                # Access reviews that an organization's schedule made due, at start and every hour.
                reviews = asyncio.create_task(review_schedule.run_periodically(db), name="atlas-review-schedule")
                # Unusual-access flags of yesterday and today (UTC), at start and every hour.
                flags = asyncio.create_task(flag_schedule.run_periodically(db), name="atlas-access-flags")
                try:
                    await server.serve()
                finally:
                    for running in (task, reviews, flags):
                        running.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await running

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


@db_app.command("upgrade")
def upgrade(roles: bool = typer.Option(True, "--roles/--no-roles",
                                       help="Create the service and writer roles and grant their rights "
                                            "(or print the SQL when this role may not).")) -> None:
    """Apply pending database migrations, set the installation's retention floor
    (ATLAS_MIN_RETENTION_DAYS, ATLAS_MIN_HARD_DELETE_DELAY_DAYS) and the database roles
    (ATLAS_SERVICE_ROLE, ATLAS_WRITER_ROLE). Run it as the role that owns the schema."""
    settings = get_settings()
    try:
        with database_url(settings) as url:
            applied = migrate.upgrade(url)
            head = migrate.current(url)
            floor = migrate.apply_retention_floor(url, settings.min_retention_days,
                                                  settings.min_hard_delete_delay_days)
            plan = migrate.apply_roles(url, settings.service_role, settings.writer_role) if roles else None
    except AtlasError as exc:
        fail(exc.message)
    if applied:
        typer.echo(f"applied {len(applied)} migration(s): {', '.join(applied)}; now at {head}")
    else:
        typer.echo(f"database is up to date (revision {head})")
    if floor.note:
        typer.echo(f"warning: {floor.note}", err=True)
    else:
        typer.echo(f"retention floor: {floor.min_retention_days} days, hard delete after at least "
                   f"{floor.min_hard_delete_delay_days} days" + (" (updated)" if floor.changed else ""))
    if plan is not None:
        if plan.applied:
            typer.echo(f"roles: {settings.service_role} (service), {settings.writer_role} (INSERT on audit_log) "
                       "granted; give them LOGIN or grant them to login roles")
        elif plan.statements:
            typer.echo(f"roles not set up: {plan.reason}. Run:", err=True)
            typer.echo(";\n".join(plan.statements) + ";")
        else:
            typer.echo(f"roles not set up: {plan.reason}", err=True)
