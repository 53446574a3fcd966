"""`sql extract`: what Atlas records for one SQL text, for people checking the extraction."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import typer

from ..audit.extraction import Catalog, extract_access
from ..auth import service as auth
from ..catalog import ddl
from ..catalog import service as catalog_service
from ..catalog.facts import build_catalog
from ..errors import BadRequest
from .common import fail, run_db

sql_app = typer.Typer(help="Check what Atlas records for a SQL text.", no_args_is_help=True)

MAX_SQL_BYTES = 1024 * 1024


def register(app: typer.Typer) -> None:
    app.add_typer(sql_app, name="sql")


def _read_catalog_file(path: Path, dialect: str | None) -> Catalog | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}", code=2)
    result = ddl.read_ddl(text, dialect)
    return build_catalog((f.table, f.column, "ddl") for f in result.facts)


@sql_app.command("extract")
def extract(dialect: str = typer.Option(None, "--dialect", help="SQL dialect or datasource type: postgres, mysql, "
                                        "mariadb, sqlite, snowflake, bigquery, tsql, … (default: generic SQL)."),
            org: str = typer.Option(None, "--org", help="Use this organization's schema catalog (from the database; its introspected and DDL facts, as ingest does)."),
            catalog_file: Path = typer.Option(None, "--catalog", help="Use the tables of this DDL file (CREATE TABLE "
                                              "…) as the catalog instead.", exists=True, dir_okay=False)) -> None:
    """Read one SQL statement (or several: their union) on standard input and print, as JSON, what ingest
    would record for it: {"tables", "columnsByTable", "ambiguous", "parseError"}.

    Without --org or --catalog no schema is known: an unqualified column of a multi-table query is
    credited to every table that could own it. "ambiguous" is always {} for now: columns are credited,
    never set aside as ambiguous, until the ambiguity rule of issue 16 exists. Exits 0 even when the SQL
    does not parse ("parseError" says why); 2 on bad options or input."""
    if org and catalog_file:
        fail("use --org or --catalog, not both", code=2)
    try:
        reader = ddl.dialect_of(dialect)
    except BadRequest as exc:
        fail(exc.message, code=2)
    data = sys.stdin.buffer.read(MAX_SQL_BYTES + 1)
    if len(data) > MAX_SQL_BYTES:
        fail("the SQL text is larger than 1 MB (the ingest limit)", code=2)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        fail("the SQL text is not UTF-8", code=2)
    if "\x00" in text:
        fail("the SQL text holds a NUL character (ingest refuses those)", code=2)
    catalog: Catalog | None = None
    if catalog_file is not None:
        catalog = _read_catalog_file(catalog_file, reader)
    elif org:
        async def work(db):
            async with db.transaction() as conn:
                org_row = await auth.get_organization(conn, org)
                return await catalog_service.load_rows(conn, org_row["id"])

        catalog = build_catalog(run_db(work))
    info = extract_access(text, reader, catalog)
    result = {"tables": list(info.tables), "columnsByTable": {t: list(c) for t, c in info.columns_by_table.items()},
              "ambiguous": {}, "parseError": info.parse_error}
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
