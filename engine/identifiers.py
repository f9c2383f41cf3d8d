"""TDengine identifiers: validated before any SQL is built from them, then back-quoted."""

from __future__ import annotations

import re

from engine.errors import UsageError

# TDengine: letters, digits and underscores, not starting with a digit, at most 64 characters
# (database names), 192 for table names; case-insensitive unless quoted, so tdsync keeps them lower.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_DATABASE_NAME = 64
MAX_TABLE_NAME = 192
SYSTEM_DATABASES = frozenset({"information_schema", "performance_schema", "log", "audit"})


def validate_database_name(name: str) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name) or len(name) > MAX_DATABASE_NAME:
        raise UsageError(f"invalid database name {name!r}: use letters, digits and underscores, "
                         f"not starting with a digit, at most {MAX_DATABASE_NAME} characters")
    return name


def validate_table_name(name: str) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_TABLE_NAME or "`" in name or "\0" in name:
        raise UsageError(f"invalid table name {name!r}")
    return name


def quote(name: str) -> str:
    """Back-quote a validated identifier."""
    return f"`{name}`"


def topic_for(database: str) -> str:
    """The topic tdsync creates on a source for one database, shared by every replica from it."""
    return f"tdsync_{validate_database_name(database)}"
