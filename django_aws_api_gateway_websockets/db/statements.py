"""One statement cache per database alias: every hand-written statement is built once per
database connection settings (quoting, column lists, the vendor's dialect) and reused by
every request and thread (a built statement holds no connection)."""

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

#: alias -> {statement key: built statement}
_CACHES: dict[str, dict[Hashable, Any]] = {}


def for_alias(alias: str) -> dict[Hashable, Any]:
    """The cache of database ``alias`` (tests put a broken statement in it)."""
    return _CACHES.setdefault(alias, {})


def statement(connection: Any, key: Hashable, build: Callable[[Any], T]) -> T:
    """``build(connection)``'s result, built once per ``connection.alias`` and ``key``."""
    cache = for_alias(connection.alias)
    try:
        return cache[key]
    except KeyError:
        built = cache[key] = build(connection)
        return built


def clear() -> None:
    """Forget every built statement (e.g. after a test changed the user model's table)."""
    _CACHES.clear()
