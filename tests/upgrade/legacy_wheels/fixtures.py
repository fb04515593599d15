"""Fixtures: a REAL database built by the old package's wheel, as a separate database alias.

``old_database_41`` / ``old_database_40`` build (see builder.py) a complete old project
database — auth tables, sessions, the old app's tables, seeded rows — on the backend the
test run uses, register it under a new alias (``old41`` / ``old40``) in ``connections`` and
``settings.DATABASES``, and yield an ``OldDatabase`` (alias, manifest, settings entry).
After the test the alias is removed and the database dropped (PostgreSQL) or deleted (SQLite).

Why a separate alias and not ``default``: pytest-django's test database already holds this
package's schema, and SQLite's default test database is ``:memory:``, which another process
cannot open. The old database is a whole old project (its own auth_user rows, which its
foreign keys point to), exactly what ``upgradeFromOldPackage --database <alias>`` meets.

Use them with ``@pytest.mark.django_db(transaction=True)`` (which lifts pytest-django's block
on database access). Do not list the alias in ``databases=``: it is added after pytest-django
checks that list, and is never wrapped in the test's transaction; the fixture drops the whole
database instead. Import the fixtures where needed::

    from tests.upgrade.legacy_wheels.fixtures import old_database_41  # noqa: F401

Skips (with the reason) when the old virtualenv cannot be made, e.g. no package index;
``DAWSGW_LEGACY_REQUIRED=1`` turns that skip into a failure (CI that must run them).
"""

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import MethodType

import pytest
from django.conf import settings
from django.db import connections

from . import builder

legacy_wheels = pytest.mark.legacy_wheels  # tests that build a real old database (venv + pip once)


@dataclass
class OldDatabase:
    alias: str
    version: str
    manifest: dict
    settings_dict: dict

    @property
    def connection(self):
        return connections[self.alias]


def _server_entry(default: dict) -> dict:
    """The PostgreSQL server the test run uses (its real test database is not touched)."""
    return {key: default.get(key) for key in ("ENGINE", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")}


def _ensure_connection_unchecked(self):
    if self.connection is None:
        with self.wrap_database_errors:
            self.connect()


def _register(alias: str, entry: dict) -> None:
    entry = {**entry, "TIME_ZONE": None, "TEST": {"NAME": entry["NAME"]}}
    settings.DATABASES[alias] = entry
    configured = connections.configure_settings({"default": dict(settings.DATABASES["default"]), alias: dict(entry)})
    connections.settings[alias] = configured[alias]
    # Django's test case refuses to connect to an alias missing from its ``databases``, and this
    # alias cannot be listed there: it does not exist yet when the test case is set up. So this
    # thread's connection object gets an ensure_connection of its own (other threads: no).
    connection = connections[alias]
    connection.ensure_connection = MethodType(_ensure_connection_unchecked, connection)


def _unregister(alias: str) -> None:
    if alias in connections.settings:
        connections[alias].close()
        try:
            del connections[alias]
        except (AttributeError, KeyError):
            pass
        del connections.settings[alias]
    settings.DATABASES.pop(alias, None)


def _fail_or_skip(exc):
    if os.environ.get("DAWSGW_LEGACY_REQUIRED"):
        pytest.fail(f"old package environment unavailable: {exc}")
    pytest.skip(f"old package environment unavailable (needs pip and the package index once): {exc}")


_PG_TEMPLATES = {}  # version -> (template database name, manifest), for this pytest process


def _pg_template(version, server, config):
    """PostgreSQL: each version built once per pytest run into a template database, dropped at exit."""
    if version not in _PG_TEMPLATES:
        name = f"old41_tpl_{version.replace('.', '')}_{uuid.uuid4().hex[:8]}"
        builder.create_pg_database(server, name)
        config.add_cleanup(lambda: builder.drop_pg_database(server, name))
        _PG_TEMPLATES[version] = (name, builder.build_old_database(version, {**server, "NAME": name}))
    return _PG_TEMPLATES[version]


def _old_database(version, alias, request, tmp_path):
    default = settings.DATABASES["default"]
    vendor = "postgresql" if "postgresql" in default["ENGINE"] else "sqlite"
    try:
        builder.ensure_venv(version)
    except builder.LegacyEnvironmentUnavailable as exc:
        _fail_or_skip(exc)
    server = None
    if vendor == "postgresql":
        server = _server_entry(default)
        template, manifest = _pg_template(version, server, request.config)
        name = f"old41_{alias}_{uuid.uuid4().hex[:10]}"
        entry = builder.create_pg_database(server, name, template=template)
        manifest = {**manifest, "database_name": name}
    else:
        path = Path(tmp_path) / f"{alias}.sqlite3"
        entry = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}
        manifest = builder.build_old_database(version, entry)
    _register(alias, entry)
    try:
        yield OldDatabase(alias=alias, version=version, manifest=manifest, settings_dict=entry)
    finally:
        _unregister(alias)
        if server is not None:
            builder.drop_pg_database(server, entry["NAME"])


@pytest.fixture
def old_database_41(request, tmp_path):
    """A database as the old package 4.1.0 (migrations 0001-0015) leaves it, seeded; alias ``old41``."""
    yield from _old_database("4.1.0", "old41", request, tmp_path)


@pytest.fixture
def old_database_40(request, tmp_path):
    """A database as the old package 4.0.0 (migrations 0001-0009) leaves it, seeded; alias ``old40``."""
    yield from _old_database("4.0.0", "old40", request, tmp_path)
