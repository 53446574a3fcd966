"""Datasource scanner: read a database's catalog, sample column values read-only, detect PII.

Supports PostgreSQL, MySQL/MariaDB and SQLite through SQLAlchemy URLs. Credentials are never stored
or logged: errors show the URL with the password hidden.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from ..audit.extraction import normalize_table_name
from ..errors import BadRequest
from .detection import Detection, detect_column

# Longer values are cut to this length: enough for the personal data written in free text to show,
# without holding whole documents in memory.
MAX_VALUE_CHARS = 4_000
BINARY_TYPES = ("bytea", "blob", "binary", "varbinary", "longblob", "mediumblob", "tinyblob", "image", "raw")


@dataclass
class ColumnResult:
    table: str
    column: str
    data_type: str
    ordinal: int
    sampled: int
    detection: Detection | None


@dataclass
class ScanResult:
    source_id: str
    tables: int = 0
    columns: list[ColumnResult] = field(default_factory=list)
    skipped_tables: list[tuple[str, str]] = field(default_factory=list)

    @property
    def detections(self) -> list[ColumnResult]:
        return [c for c in self.columns if c.detection is not None]


def safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BadRequest("the datasource URL is not a valid SQLAlchemy URL, e.g. "
                         "postgresql+psycopg://user@host/db, mysql+pymysql://user@host/db or sqlite:///file.db") from None
    backend = parsed.get_backend_name()
    if backend not in ("postgresql", "mysql", "mariadb", "sqlite"):
        raise BadRequest(f"unsupported datasource {backend!r}: use PostgreSQL, MySQL/MariaDB or SQLite")
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend in ("mysql", "mariadb") and "+" not in parsed.drivername:
        parsed = parsed.set(drivername="mysql+pymysql")
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except NoSuchModuleError as exc:
        raise BadRequest(f"no driver for {parsed.drivername}: {exc}") from None


def default_source_id(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return "sqlite:" + (parsed.database or "memory").rsplit("/", 1)[-1]
    return f"{parsed.get_backend_name()}:{parsed.host or 'local'}/{parsed.database or ''}"


def _read_only_session(conn, backend: str, seconds: float) -> None:
    """Before the transaction: the session may only read, and each statement has a time limit."""
    if backend == "mariadb":
        conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        conn.exec_driver_sql(f"SET SESSION max_statement_time = {float(seconds)}")
    elif backend == "mysql":
        conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        conn.exec_driver_sql(f"SET SESSION max_execution_time = {int(seconds * 1000)}")
    elif backend == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")


def _read_only_transaction(conn, backend: str, seconds: float) -> None:
    if backend == "postgresql":
        conn.execute(text("SET TRANSACTION READ ONLY"))
        conn.execute(text(f"SET LOCAL statement_timeout = {int(seconds * 1000)}"))


def _quote(engine: Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


def _clean(values: list[Any]) -> list[Any]:
    out = []
    for v in values:
        if v is None or isinstance(v, bytes | bytearray | memoryview):
            continue
        if isinstance(v, str) and len(v) > MAX_VALUE_CHARS:
            v = v[:MAX_VALUE_CHARS]
        out.append(v)
    return out


def scan(url: str, *, schemas: list[str] | None = None, sample: int = 200, source_id: str | None = None,
         table_timeout: float = 30.0, progress: Callable[[str, int, int], None] | None = None) -> ScanResult:
    """Scan a datasource and return per-column detections (nothing is stored here)."""
    if sample < 1 or sample > 10_000:
        raise BadRequest("--sample must be between 1 and 10000")
    engine = _engine(url)
    result = ScanResult(source_id=source_id or default_source_id(url))
    try:
        inspector = inspect(engine)  # connects: the dialect now knows whether this is MariaDB
        backend = "mariadb" if getattr(engine.dialect, "is_mariadb", False) else engine.dialect.name
        targets: list[str | None] = list(schemas) if schemas else [inspector.default_schema_name]
        tables = [(schema, t) for schema in targets for t in inspector.get_table_names(schema=schema)]
        for index, (schema, table) in enumerate(tables, start=1):
            qualified = table if schema in (None, "public", "main", inspector.default_schema_name) else f"{schema}.{table}"
            name = normalize_table_name(qualified)
            if progress:
                progress(name, index, len(tables))
            try:
                columns = inspector.get_columns(table, schema=schema)
                result.columns.extend(_scan_table(engine, backend, schema, table, name, columns, sample, table_timeout))
                result.tables += 1
            except SQLAlchemyError as exc:
                result.skipped_tables.append((name, str(exc).splitlines()[0][:200]))
    except SQLAlchemyError as exc:
        raise BadRequest(f"cannot scan {safe_url(url)}: {str(exc).splitlines()[0][:300]}") from None
    finally:
        engine.dispose()
    return result


def _scan_table(engine: Engine, backend: str, schema: str | None, table: str, name: str, columns: list[dict],
                sample: int, timeout: float) -> list[ColumnResult]:
    found: list[ColumnResult] = []
    target = (_quote(engine, schema) + "." if schema and backend != "sqlite" else "") + _quote(engine, table)
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        _read_only_session(conn, backend, timeout)
        conn.commit()  # end the implicit transaction so the next one starts read-only
        trans = conn.begin()
        _read_only_transaction(conn, backend, timeout)
        for ordinal, col in enumerate(columns, start=1):
            data_type = str(col["type"]).lower()
            column = col["name"]
            values: list[Any] = []
            if not data_type.startswith(BINARY_TYPES) and time.monotonic() < deadline:
                quoted = _quote(engine, column)
                rows = conn.execute(text(f"SELECT {quoted} FROM {target} WHERE {quoted} IS NOT NULL "  # noqa: S608
                                         f"LIMIT {int(sample)}"))
                values = _clean([r[0] for r in rows])
            detection = detect_column(column, data_type, values, table=name)
            found.append(ColumnResult(table=name, column=column.lower(), data_type=data_type, ordinal=ordinal,
                                      sampled=len(values), detection=detection))
        trans.rollback()  # nothing was written; end the read-only transaction
    return found


def detection_records(result: ScanResult) -> list[dict[str, Any]]:
    """Classification rows for the scan's detections (the shape `service.upsert_detections` takes)."""
    records = []
    for c in result.detections:
        d = c.detection
        assert d is not None
        records.append({"table": c.table, "column": c.column, "group": None, "category": d.category,
                        "confidence": d.confidence, "strategy": d.masking_strategy, "method": d.method,
                        "reason": d.reason, "evidence": d.evidence.to_dict(), "source_id": result.source_id})
    return records
