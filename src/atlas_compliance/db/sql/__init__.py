"""SQL files of database functions (CREATE OR REPLACE only), applied in this order at the end of every
upgrade that ran a migration (see rollups.sql and atlas_compliance.db.migrate)."""

from __future__ import annotations

from importlib.resources import files

DEFINITIONS = ("rollups.sql",)


def read_sql(name: str) -> str:
    """The text of one of this package's SQL files."""
    return files(__package__).joinpath(name).read_text(encoding="utf-8")
