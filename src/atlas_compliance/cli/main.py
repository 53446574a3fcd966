"""The `atlas-compliance` command line."""

from __future__ import annotations

import logging

import typer

from .. import __version__
from ..config import get_settings
from ..logging import configure_logging
from . import (
    activity,
    admin,
    audit,
    catalog,
    demo,
    events,
    evidence,
    flags,
    keys,
    pii,
    reports,
    reviews,
    server,
    sources,
    sql,
)

app = typer.Typer(
    name="atlas-compliance",
    help="Atlas Compliance: SOC 2 / HIPAA evidence from an audit trail of SQL queries.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"atlas-compliance {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """Configuration comes from the environment: DATABASE_URL (else an embedded PostgreSQL in
    ATLAS_DATA_DIR, default ./.atlas-data), ATLAS_HOST, ATLAS_PORT, ATLAS_LOG_LEVEL, ATLAS_SESSION_TTL."""
    settings = get_settings()
    configure_logging(settings.log_level if settings.log_level.upper() == "DEBUG" else "WARNING")


for module in (server, admin, audit, events, activity, keys, sources, reports, reviews, flags, evidence, pii, catalog,
               sql, demo):
    module.register(app)


def main() -> None:
    logging.captureWarnings(True)
    app()


if __name__ == "__main__":
    main()
