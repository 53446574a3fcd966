"""`catalog sync`, `catalog import`, `catalog show`: the schema catalog used to credit columns to tables."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ..auth import service as auth
from ..catalog import ddl, introspect, service
from ..catalog.facts import ORIGINS
from ..errors import BadRequest
from .common import console, fail, out, run_db

catalog_app = typer.Typer(help="The schema catalog: which columns each table has, and where that is known from.",
                          no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")


@catalog_app.command("sync")
def sync(datasource_url: str = typer.Argument(..., help="SQLAlchemy URL: postgresql://…, mysql+pymysql://…, "
                                              "sqlite:///file.db. Never stored or logged."),
         org: str = typer.Option(..., "--org", help="Organization slug."),
         name: str = typer.Option(None, "--name", help="Name of this datasource in the catalog (default: "
                                  "backend:host/db, as pii scan names it)."),
         schema: list[str] = typer.Option(None, "--schema", help="Schema to read (repeatable; default: the default "
                                          "schema).")) -> None:
    """Read the tables, views and columns of a datasource (its own catalog only, no row) and make them
    that datasource's catalog entry (origin introspected), replacing what the previous sync of the same
    name stored. Ingest then credits unqualified columns to the tables that have them."""
    if name is not None:
        try:
            name = service.check_source_name(name)
        except BadRequest as exc:
            fail(exc.message, code=2)

    async def work(db):
        async with db.transaction() as conn:
            org_row = await auth.get_organization(conn, org)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console,
                      transient=True) as progress:
            task = progress.add_task("reading", total=None)

            def step(table: str, index: int, total: int) -> None:
                progress.update(task, description=f"reading {table}", completed=index - 1, total=total)

            result = await asyncio.to_thread(introspect.introspect, datasource_url, schemas=schema or None,
                                             name=name, progress=step)
        async with db.transaction() as conn:
            await service.store_source(conn, org_row["id"], result.source, "introspected", result.facts,
                                       actor="system:cli")
        return result

    result = run_db(work)
    for table, why in result.skipped_tables:
        console.print(f"  skipped {table}: {why}", highlight=False)
    typer.echo(f"{result.source}: {result.tables} tables, {len(result.facts)} columns ({result.backend}, introspected)")


@catalog_app.command("import")
def import_(file: Path = typer.Argument(..., help="A .sql file of DDL (CREATE TABLE …; pg_dump --schema-only, "
                                        "mysqldump --no-data and sqlite3 .schema output work).",
                                        exists=True, dir_okay=False),
            org: str = typer.Option(..., "--org", help="Organization slug."),
            dialect: str = typer.Option(None, "--dialect", help="SQL dialect of the file: postgres, mysql, sqlite, "
                                        "snowflake, bigquery, tsql, … (default: generic SQL)."),
            name: str = typer.Option(None, "--name", help="Name of this datasource in the catalog (default: "
                                     "ddl:FILE-NAME).")) -> None:
    """Read CREATE TABLE (and CREATE VIEW, CREATE TABLE … AS, ALTER TABLE … ADD COLUMN) statements and make
    their tables that datasource's catalog entry (origin ddl), replacing what the previous import of the
    same name stored. Other statements are ignored; statements that do not parse are skipped and counted."""
    try:
        reader = ddl.dialect_of(dialect)
        source = service.check_source_name(name if name is not None else f"ddl:{file.name}")
        text = file.read_text(encoding="utf-8")
        result = ddl.read_ddl(text, reader)
    except BadRequest as exc:
        fail(exc.message, code=2)
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {file}: {exc}", code=2)
    if not result.facts:
        fail(f"no CREATE TABLE with columns in {file} ({result.skipped} statements did not parse)", code=1)

    async def work(db):
        async with db.transaction() as conn:
            org_row = await auth.get_organization(conn, org)
            await service.store_source(conn, org_row["id"], source, "ddl", result.facts, actor="system:cli")

    run_db(work)
    typer.echo(f"{source}: {result.tables} tables, {len(result.facts)} columns (ddl; {result.skipped} statements "
               "skipped)")


@catalog_app.command("show")
def show(org: str = typer.Option(..., "--org", help="Organization slug."),
         name: str = typer.Option(None, "--name", help="Only this datasource ('' for the facts learned from the "
                                  "audit trail)."),
         table: str = typer.Option(None, "--table", help="Only this table (normalized like audit rows)."),
         origin: str = typer.Option(None, "--origin", help="Only facts of this origin: introspected, ddl or learned."),
         limit: int = typer.Option(10_000, "--limit", help="At most this many columns (1–100000).")) -> None:
    """List the catalog: datasource, schema, table, column, data type, origin, and when it was recorded."""
    from ..audit.names import normalize_table_name

    if origin is not None and origin not in ORIGINS:
        fail(f"--origin must be one of {', '.join(ORIGINS)}", code=2)
    if not 1 <= limit <= 100_000:
        fail("--limit must be between 1 and 100000", code=2)

    async def work(db):
        async with db.transaction() as conn:
            org_row = await auth.get_organization(conn, org)
            return await service.list_facts(conn, org_row["id"], source=name,
                                         table=normalize_table_name(table) if table else None, origin=origin,
                                         limit=limit)

    rows, total = run_db(work)
    grid = Table(header_style="bold")
    for c in ("datasource", "schema", "table", "column", "type", "origin", "recorded"):
        grid.add_column(c, overflow="fold")
    for r in rows:
        grid.add_row(r["source_id"] or "(audit trail)", r["schema_name"] or "", r["table_name"], r["column_name"],
                     r["data_type"] or "", r["origin"], r["scanned_at"].isoformat(timespec="seconds"))
    out.print(grid)
    tables = len({(r["source_id"], r["table_name"]) for r in rows})
    shown = f"{len(rows)} of {total}" if total > len(rows) else f"{total}"
    typer.echo(f"{shown} column{'' if total == 1 else 's'} in {tables} table{'' if tables == 1 else 's'}")
