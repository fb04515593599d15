"""What the database can do, decided from Django's own feature flags (``connection.features``),
never from a driver's version number; the vendor only where Django has no flag."""

from typing import Any


def returning_upserts(connection: Any) -> bool:
    """``INSERT … ON CONFLICT (target) DO UPDATE … RETURNING`` and ``UPDATE … RETURNING``.

    Django's flags: ``can_return_columns_from_insert`` (PostgreSQL, SQLite >= 3.35, MariaDB
    >= 10.5, Oracle) and ``supports_update_conflicts_with_target`` (PostgreSQL, SQLite >= 3.24):
    together they are PostgreSQL and SQLite >= 3.35, whose ``UPDATE`` also takes ``RETURNING``
    (MariaDB's does not: it has no conflict target either). Elsewhere the ORM path runs."""
    features = connection.features
    return bool(features.can_return_columns_from_insert and features.supports_update_conflicts_with_target)


def writes_in_with(connection: Any) -> bool:
    """Data-modifying ``WITH`` clauses, and an ``UPDATE … FROM`` whose ``RETURNING`` names the
    joined table's columns: PostgreSQL (Django has no feature flag for either)."""
    return connection.vendor == "postgresql" and returning_upserts(connection)
