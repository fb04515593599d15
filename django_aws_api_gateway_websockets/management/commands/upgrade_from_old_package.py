from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.utils import timezone

from ...upgrade import apply, detect
from ...upgrade import plan as planning


class Command(BaseCommand):
    help = (
        "Move a database migrated by the old django-aws-api-gateway-websockets (4.0.x or 4.1.0) to this "
        "package's schema: rows saved to a fixture file, tables recreated, rows loaded back."
    )

    def add_arguments(self, parser):
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="The database to upgrade (default: default).")
        parser.add_argument(
            "--fixture",
            metavar="PATH",
            help="Where to save the rows first (default: websockets-upgrade-<date-time>.json here).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only print what would be moved.")
        parser.add_argument(
            "--discard-uncarried",
            action="store_true",
            help="Upgrade even though what --dry-run lists under 'cannot be carried' will be lost.",
        )

    def handle(self, *args, database, fixture, dry_run, discard_uncarried, **options):
        if database not in connections:
            known = ", ".join(sorted(connections.settings))
            raise CommandError(f"No database '{database}' in DATABASES (configured: {known}).")
        path = fixture or f"websockets-upgrade-{timezone.now():%Y%m%d-%H%M%S}.json"
        try:
            plan = planning.plan_upgrade(database)
            if dry_run:
                self.dry_run(plan)
                return
            apply.upgrade(database, path, log=self.stdout.write, discard_uncarried=discard_uncarried, plan=plan)
        except (detect.UpgradeError, apply.UpgradeStopped) as exc:
            raise CommandError(str(exc)) from exc
        except FileExistsError as exc:
            raise CommandError(f"{path} exists: choose another --fixture (it may hold an earlier save).") from exc
        except (DatabaseError, OSError) as exc:
            raise CommandError(f"Upgrade stopped before anything was changed: {exc}") from exc
        self.report_creating(plan)
        self.stdout.write(
            self.style.SUCCESS(
                "Upgraded. Keep the fixture (it holds secrets: keep it private) "
                "until you have checked the data, then delete it."
            )
        )
        if plan.version == detect.V41 and plan.secrets:
            self.stdout.write(
                "Next: `sync_api_gateway --pk N` for each record: it maps X-Gateway-Secret on the integrations and "
                "redeploys. Until then requests carrying the 4.1.0 header X-Ws-Gateway-Secret are accepted "
                "(`check --deploy` lists those records as aws_websockets.W051)."
            )
        else:
            self.stdout.write(
                "Next: `sync_api_gateway --pk N --rotate-secret` for each record (records have no integration "
                "secret yet; `check --deploy` lists them as aws_websockets.W032)."
            )

    def report_creating(self, plan):
        for record in plan.creating:
            self.stdout.write(
                self.style.WARNING(
                    f"Record {record.pk} ({record.api_name!r}) was left 'creating' by the old package: a run may have "
                    "created its API in AWS without recording the id. It keeps that status, so provisioning will not "
                    "create a second API: `create_api_gateway` looks for one of that name in AWS first; if 4.1.0 made it, "
                    f"adopt it with `create_api_gateway --pk {record.pk} --adopt API_ID`."
                )
            )

    def dry_run(self, plan):
        self.stdout.write(
            f"Found the old package {plan.version} on '{plan.alias}' (migrations {', '.join(plan.migrations)})."
        )
        for label, rows in plan.counts().items():
            self.stdout.write(f"  would copy {rows} {label} row(s)")
        if plan.version == detect.V41:
            self.stdout.write(f"  would copy {plan.pair_count} channel rule <-> permission pair(s)")
        self.stdout.write(
            "  tokens keep working: stored as SHA-256" + (", session keys hashed" if plan.version == detect.V40 else "")
        )
        self.stdout.write(f"  {planning.describe_secrets(plan)}")
        self.stdout.write(f"  would drop the tables {', '.join(plan.drop_tables)}")
        self.report_creating(plan)
        if plan.uncarried:
            self.stdout.write(
                self.style.WARNING("Cannot be carried over (the upgrade refuses to run without --discard-uncarried):")
            )
            for item in plan.uncarried:
                self.stdout.write(f"  {item}")
        else:
            self.stdout.write("Everything is carried over.")
        self.stdout.write("Dry run: nothing was changed.")
