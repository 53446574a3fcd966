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
_SPACES = " \t\n\r\f\v"


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
    """Normalize a table name one way everywhere (audit rows, classifications, catalog, report filters).

    The rule (the SQL function ``atlas_normalize_table`` applies the same one; both are checked against
    ``tests/audit/fixtures/table_names.tsv``):

    - quote characters (``"`[]``) removed, lowercased;
    - split on ``.``; spaces, tabs and line breaks around each part removed; empty parts at either end
      dropped (a stray leading or trailing dot), empty inner parts kept;
    - a two-part ``public.table`` loses the default schema ``public``; other schemas are kept;
    - a name of three or more parts (``database.schema.table``: a database, BigQuery project or
      Snowflake database named in the SQL) is kept whole, ``public`` included, so
      ``prod.public.patients`` and ``staging.public.patients`` stay two tables and never collide with a
      schema called ``prod``; nothing is ever cut off the front;
    - an over-long result is folded (:func:`fold_name`).

    Idempotent.

    >>> [normalize_table_name(n) for n in ('"Public"."Orders"', "Analytics.Events", "DB.public.Orders")]
    ['orders', 'analytics.events', 'db.public.orders']
    >>> normalize_table_name("`acme-prod.crm.customers`"), normalize_table_name("[dbo].[Patients]")
    ('acme-prod.crm.customers', 'dbo.patients')
    """
    parts = [p.strip(_SPACES) for p in name.translate(_QUOTES).lower().split(".")]
    start, end = 0, len(parts)
    while start < end and not parts[start]:
        start += 1
    while end > start and not parts[end - 1]:
        end -= 1
    parts = parts[start:end]
    if len(parts) == 2 and parts[0] == "public":
        del parts[0]
    return fold_name(".".join(parts))


def short_table_name(name: str) -> str:
    """The name without its database part: ``prod.public.patients`` -> ``patients``,
    ``prod.crm.customers`` -> ``crm.customers``; a one- or two-part name is returned as is. ``name`` is
    normalized. Report ``table`` filters match a stored name when either form equals the filter.

    >>> short_table_name("prod.public.patients"), short_table_name("crm.customers")
    ('patients', 'crm.customers')
    """
    parts = name.split(".")
    if len(parts) != 3:
        return name
    return parts[2] if parts[1] == "public" else f"{parts[1]}.{parts[2]}"
