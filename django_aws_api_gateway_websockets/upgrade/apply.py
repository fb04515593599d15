"""Carry a ``Plan`` out: save the rows to a fixture, drop the old tables, migrate, load them back."""

import datetime
import json
import os

from django.core import serializers
from django.core.management import call_command
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connections
from django.db.migrations.recorder import MigrationRecorder

from ..db import subscriptions as subscription_sql
from ..exceptions import WebSocketsError
from ..models import ChannelPermissionRule
from .detect import APP_LABEL, UpgradeError, tables_to_drop
from .plan import describe_secrets, plan_upgrade


class UpgradeStopped(WebSocketsError):
    """A step after the old tables were dropped failed; the rows are in ``fixture_path``."""

    def __init__(self, fixture_path, cause):
        super().__init__(
            f"Upgrade stopped: {cause}. The rows are saved in {fixture_path}: once the cause is fixed, "
            f"run `migrate` and `loaddata {fixture_path}` (docs/upgrading.md)."
        )
        self.fixture_path = fixture_path


def count_rows(alias, models):
    """``{model label: rows}`` in these models' tables on ``alias``."""
    return {model._meta.label: model.objects.using(alias).count() for model in models}


def fixture_entries(plan):
    """The plan's rows as ``loaddata`` entries; rule permissions by natural key
    (codename, app label, model), looked up again when loaded."""
    entries = []
    for model, instances in plan.rows.items():
        if model is ChannelPermissionRule:
            rule_entries = serializers.serialize("python", instances, fields=["channel_permission"])
            for entry in rule_entries:
                entry["fields"]["permissions"] = [list(key) for key in plan.rule_permissions.get(entry["pk"], [])]
            entries.extend(rule_entries)
        else:
            entries.extend(serializers.serialize("python", instances))
    return entries


class _ExactEncoder(DjangoJSONEncoder):
    """Django's encoder, but datetimes keep their microseconds (it rounds them to milliseconds)."""

    def default(self, o):
        if isinstance(o, datetime.datetime):
            return o.isoformat()
        return super().default(o)


def write_fixture(entries, fixture_path):
    """Write ``entries`` to a new file, readable by its owner only (it holds the gateway
    secrets); a half-written file is removed, an existing one kept."""
    descriptor = os.open(fixture_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never over an earlier save
    with open(descriptor, "w", encoding="utf-8") as fixture:
        try:
            json.dump(entries, fixture, cls=_ExactEncoder, indent=1)
        except BaseException:
            fixture.close()
            os.remove(fixture_path)
            raise


def drop_tables(alias, tables=None):
    """Drop ``tables`` (default: ``tables_to_drop``) on ``alias``, in that order, by name: the
    M2M table's name depends on the backend that made it, not on this process's models."""
    connection = connections[alias]
    tables = tables_to_drop(alias) if tables is None else tables
    with connection.schema_editor() as editor:
        for table in tables:
            editor.execute(editor.sql_delete_table % {"table": editor.quote_name(table)})


def upgrade(alias, fixture_path, log=print, discard_uncarried=False, plan=None):
    """Move the old schema's data to this package's schema on database ``alias``.

    1. read every old row and write them to ``fixture_path`` (a new ``loaddata`` fixture);
    2. drop the old tables and the app's ``django_migrations`` rows;
    3. ``migrate`` this app; 4. ``loaddata`` the fixture.
    Raises ``UpgradeError`` (or the database's or file system's error) when nothing was changed
    (among others when something cannot be carried and ``discard_uncarried`` is false),
    ``UpgradeStopped`` when step 2, 3 or 4 failed: nothing is lost, the fixture holds the rows.
    Returns the ``Plan`` it carried out.
    """
    plan = plan or plan_upgrade(alias)
    if plan.uncarried and not discard_uncarried:
        raise UpgradeError(
            "These cannot be carried over: "
            + "; ".join(map(str, plan.uncarried))
            + ". Nothing was changed; run again with --discard-uncarried to upgrade without them."
        )
    entries = fixture_entries(plan)
    write_fixture(entries, fixture_path)
    counts = ", ".join(f"{rows} {label}" for label, rows in plan.counts().items())
    pairs = f", {plan.pair_count} rule permission(s)" if plan.rule_permissions else ""
    log(f"1/4 found {plan.version}; wrote {len(entries)} row(s) to {fixture_path}: {counts}{pairs}")

    try:
        drop_tables(alias, plan.drop_tables)
        MigrationRecorder(connections[alias]).migration_qs.filter(app=APP_LABEL).delete()
        log(
            f"2/4 dropped the old tables ({len(plan.drop_tables)}) and the history of migrations "
            f"{', '.join(plan.migrations)}"
        )
        call_command("migrate", APP_LABEL, database=alias, verbosity=0, interactive=False)
        log("3/4 migrated to this package's schema")
        if entries:
            call_command("loaddata", str(fixture_path), database=alias, verbosity=0)
            # Each connection's channel is its subscription (issue #25): loaddata saves rows raw.
            subscription_sql.copy_channel_names(alias)
    except (DatabaseError, OSError) as exc:
        raise UpgradeStopped(fixture_path, exc) from exc
    log(f"4/4 loaded the rows back; {describe_secrets(plan)}")
    for item in plan.uncarried:
        log(f"    not carried: {item}")
    return plan
