"""Schema facts read from a live database (PostgreSQL, MySQL/MariaDB, SQLite) through SQLAlchemy's
inspector: the same URLs, drivers and table naming as `pii scan` (`pii/scanner.py`), so the catalog
and the PII classifications name every table alike. Only the database's own catalog is read; no row
of any table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from ..errors import BadRequest
from ..pii.scanner import _engine, default_source_id, safe_url
from .facts import Fact, dedupe


@dataclass
class Introspection:
    source: str
    backend: str
    facts: list[Fact] = field(default_factory=list)
    tables: int = 0
    skipped_tables: list[tuple[str, str]] = field(default_factory=list)


def introspect(url: str, *, schemas: list[str] | None = None, name: str | None = None,
               progress: Callable[[str, int, int], None] | None = None) -> Introspection:
    """Every table and view of ``schemas`` (default: the connection's default schema) with its columns."""
    engine = _engine(url)
    try:
        inspector = inspect(engine)
        backend = "mariadb" if getattr(engine.dialect, "is_mariadb", False) else engine.dialect.name
        result = Introspection(source=name or default_source_id(url), backend=backend)
        default = inspector.default_schema_name
        targets: list[str | None] = list(schemas) if schemas else [default]
        found = [(schema, t) for schema in targets
                 for t in [*inspector.get_table_names(schema=schema), *inspector.get_view_names(schema=schema)]]
        facts: list[Fact] = []
        for index, (schema, table) in enumerate(found, start=1):
            qualified = table if schema in (None, "public", "main", default) else f"{schema}.{table}"
            if progress:
                progress(qualified, index, len(found))
            try:
                columns = inspector.get_columns(table, schema=schema)
            except SQLAlchemyError as exc:
                result.skipped_tables.append((qualified, str(exc).splitlines()[0][:200]))
                continue
            result.tables += 1
            facts.extend(Fact.of(qualified, c["name"], schema or default, str(c["type"]), ordinal)
                         for ordinal, c in enumerate(columns, start=1))
        result.facts = dedupe(facts)
        return result
    except SQLAlchemyError as exc:
        raise BadRequest(f"cannot read the catalog of {safe_url(url)}: {str(exc).splitlines()[0][:300]}") from None
    finally:
        engine.dispose()
