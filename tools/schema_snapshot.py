"""The migrated schema as text, to compare with the checked-in `tests/schema.snapshot`.

A migration that changes a table, an index, a trigger or a function changes this text; the test in
tests/test_migrations_and_demo.py then fails until the snapshot is written again, so every change to the
schema (and so to what the rollups, the guards and the chains do) is seen in review. Functions are
listed with their settings and a digest of their source; the rollup functions' source is
`src/atlas_compliance/db/sql/rollups.sql`.

    python -m tools.schema_snapshot --write   # migrate a throwaway database, write tests/schema.snapshot
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

SNAPSHOT = Path(__file__).resolve().parent.parent / "tests" / "schema.snapshot"

COLUMNS = """
SELECT c.relname AS rel, c.relkind AS kind, a.attname AS col, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default_expr, a.attgenerated AS generated
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'v', 'p')
ORDER BY c.relname, a.attnum
"""
INDEXES = "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY tablename, indexname"
CONSTRAINTS = """
SELECT cl.relname AS rel, co.conname AS name, pg_get_constraintdef(co.oid) AS def
FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid
JOIN pg_namespace n ON n.oid = cl.relnamespace AND n.nspname = 'public'
ORDER BY 1, 2
"""
TRIGGERS = """
SELECT pg_get_triggerdef(t.oid) AS def, t.tgenabled AS enabled FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
WHERE NOT t.tgisinternal ORDER BY c.relname, t.tgname
"""
FUNCTIONS = """
SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS name,
       pg_get_function_result(p.oid) AS result, l.lanname AS lang, p.prosecdef AS definer,
       coalesce(array_to_string(p.proconfig, ', '), '') AS config, p.prosrc AS src, p.prokind AS kind
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = 'public'
JOIN pg_language l ON l.oid = p.prolang
ORDER BY 1
"""


def describe(url: str) -> str:
    """The public schema of the database at `url`, one line per column, index, constraint, trigger, function."""
    lines: list[str] = []
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as conn:
        for r in conn.execute(COLUMNS):
            extra = (" not null" if r["not_null"] else "") + (
                f" {'generated' if r['generated'] else 'default'} {r['default_expr']}" if r["default_expr"] else "")
            lines.append(f"column {r['rel']}.{r['col']} ({'view' if r['kind'] == 'v' else 'table'}): "
                         f"{r['type']}{extra}")
        lines += [f"index {r['indexdef']}" for r in conn.execute(INDEXES)]
        lines += [f"constraint {r['rel']}.{r['name']}: {r['def']}" for r in conn.execute(CONSTRAINTS)]
        lines += [f"trigger {r['def']}" + ("" if r["enabled"] == "O" else f" [enabled={r['enabled']}]")
                  for r in conn.execute(TRIGGERS)]
        for r in conn.execute(FUNCTIONS):
            digest = hashlib.sha256(r["src"].encode()).hexdigest()[:16]
            lines.append(f"function {r['name']} -> {r['result']} [{r['lang']}"
                         f"{', security definer' if r['definer'] else ''}{', ' + r['config'] if r['config'] else ''}"
                         f"{', ' + r['kind'] if r['kind'] != 'f' else ''}] source {digest}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"write {SNAPSHOT.relative_to(SNAPSHOT.parents[1])}")
    parser.add_argument("--url", default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
                        help="a server to create the throwaway database on (default: DATABASE_URL)")
    args = parser.parse_args()
    from atlas_compliance.db import migrate
    from atlas_compliance.db.pool import to_libpq_url

    server = to_libpq_url(args.url)
    name = f"atlas_snapshot_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        parts = urlsplit(server)
        url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
        migrate.upgrade(url)
        text = describe(url)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.write:
        SNAPSHOT.write_text(text)
        print(f"wrote {SNAPSHOT} ({text.count(chr(10))} lines)")
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
