"""How table and column names are written everywhere: audit rows, rollups, classifications, filters.

The SQL functions ``atlas_normalize_table`` and ``atlas_fold_name`` (migrations) implement the same
rules for rows that other writers insert with plain SQL; both sides are tested against each other.

Names longer than :data:`MAX_NAME_BYTES` (UTF-8) are *folded*: their first
:data:`FOLD_PREFIX_CHARS` characters, ``~``, and the first 16 hex digits of the SHA-256 of the whole
name. PostgreSQL cannot index a key of more than about 2,700 bytes, and a rollup key holds a table name,
a column name and a user id; real identifiers stay far below the limit (PostgreSQL 63 bytes, MySQL 64
characters, SQL Server 128, BigQuery columns 300), so folding only ever touches generated or hostile
names, and the digest keeps distinct names apart.
"""

from __future__ import annotations

import hashlib

MAX_NAME_BYTES = 512
FOLD_PREFIX_CHARS = 120  # at most 480 bytes of UTF-8; with "~" and 16 hex digits, under MAX_NAME_BYTES

_QUOTES = str.maketrans("", "", '"`[]')


def fold_name(name: str) -> str:
    """``name`` itself when it fits in :data:`MAX_NAME_BYTES`, else its folded form. Idempotent.

    >>> fold_name("email")
    'email'
    >>> folded = fold_name("x" * 600)
    >>> folded[:3], folded[120], len(folded), fold_name(folded) == folded
    ('xxx', '~', 137, True)
    """
    if len(name) * 4 <= MAX_NAME_BYTES or len(name.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{name[:FOLD_PREFIX_CHARS]}~{digest}"


def normalize_column_name(name: str) -> str:
    """Column names compare lowercase, quoted or not (``"Email"`` and ``email`` are one column).

    >>> normalize_column_name('Email')
    'email'
    """
    return fold_name(name.lower())


def normalize_table_name(name: str) -> str:
    """Normalize a table name one way everywhere (audit rows, classifications, report filters).

    Lowercased; quote characters (``"`[]``) removed; the default schema ``public`` dropped, other
    schemas kept; in a three-part ``catalog.schema.table`` name (a database, BigQuery project or
    Snowflake database) the catalog part is dropped, so ``db.public.orders`` is ``orders``; an
    over-long result is folded (:func:`fold_name`). Idempotent.

    >>> [normalize_table_name(n) for n in ('"Public"."Orders"', "Analytics.Events", "db.public.orders")]
    ['orders', 'analytics.events', 'orders']
    >>> normalize_table_name("`acme-prod.crm.customers`"), normalize_table_name("[dbo].[Patients]")
    ('crm.customers', 'dbo.patients')
    """
    parts = [p.strip() for p in name.translate(_QUOTES).lower().split(".")]
    parts = [p for p in parts if p][-2:]
    if len(parts) == 2 and parts[0] == "public":
        del parts[0]
    return fold_name(".".join(parts))
