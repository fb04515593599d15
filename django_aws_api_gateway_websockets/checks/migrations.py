"""``migrate`` (and the test runner): the database's migration history (E038)."""

from django.core.checks import Tags, register
from django.db import router

from .messages import NAMESPACE, Template

E038 = Template(
    "E038",
    "Database '{alias}' holds the old django-aws-api-gateway-websockets schema "
    "(migrations {old} applied), not this package's.",
    hint="Run `manage.py upgrade_from_old_package --database {alias}`: it saves the rows to a "
    "fixture, recreates the tables and loads them back (docs/upgrading.md).",
)


@register(NAMESPACE, Tags.database)
def check_migration_history(app_configs, databases=None, **kwargs):
    """The old package's migration rows (0002-0009 beside a shared 0001) mean its schema, not ours.

    Its ``0001_initial`` shares our name, so ``migrate`` would treat our tables as created and
    every query would fail on missing columns. Tagged ``database``: ``migrate`` runs it on the
    alias it migrates, before touching anything.
    """
    if not databases:  # Django passes the aliases only where it may query them
        return []
    from ..upgrade import detect

    ours = detect.own_migration_names()
    if not ours:  # migrations disabled for this app (MIGRATION_MODULES = None)
        return []
    messages = []
    for alias in databases:
        if not router.allow_migrate(alias, detect.APP_LABEL):
            continue
        old = detect.old_migrations(alias, ours)
        if old:
            messages.append(E038(alias=alias, old=", ".join(old)))
    return messages
