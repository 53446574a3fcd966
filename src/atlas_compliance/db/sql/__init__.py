"""SQL files of database functions, applied by migrations with CREATE OR REPLACE (see rollups.sql)."""

from __future__ import annotations

from importlib.resources import files


def read_sql(name: str) -> str:
    """The text of one of this package's SQL files."""
    return files(__package__).joinpath(name).read_text(encoding="utf-8")
