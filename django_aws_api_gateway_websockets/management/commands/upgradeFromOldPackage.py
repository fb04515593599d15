from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError
from django.utils import timezone

from ... import legacy


class Command(BaseCommand):
    help = (
        "Move a database migrated by the old django-aws-api-gateway-websockets (4.x) to this package's "
        "schema: rows saved to a fixture file, tables recreated, rows loaded back."
    )

    def add_arguments(self, parser):
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="The database to upgrade (default: default).")
        parser.add_argument(
            "--fixture",
            metavar="PATH",
            help="Where to save the rows first (default: websockets-upgrade-<date-time>.json here).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only print what would be moved.")

    def handle(self, *args, database, fixture, dry_run, **options):
        try:
            if dry_run:
                self.dry_run(database)
                return
            path = fixture or f"websockets-upgrade-{timezone.now():%Y%m%d-%H%M%S}.json"
            legacy.upgrade(database, path, log=self.stdout.write)
        except (legacy.UpgradeError, legacy.UpgradeStopped) as exc:
            raise CommandError(str(exc)) from exc
        except FileExistsError as exc:
            raise CommandError(f"{path} exists: choose another --fixture (it may hold an earlier save).") from exc
        except (DatabaseError, OSError) as exc:
            raise CommandError(f"Upgrade stopped before anything was changed: {exc}") from exc
        self.stdout.write(
            self.style.SUCCESS("Upgraded. Keep the fixture until you have checked the data.")
            + "\nNext: `syncApiGateway --pk N --rotate-secret` for each record (records have no integration "
            "secret yet; `check --deploy` lists them as aws_websockets.W032)."
        )

    def dry_run(self, database):
        old = legacy.check_upgradable(database)
        self.stdout.write(f"Old migrations applied on '{database}': {', '.join(old)}")
        for verb, models in (("copy", legacy.OLD_COLUMNS), ("drop", legacy.DROPPED)):
            for label, rows in legacy.count_rows(database, models).items():
                self.stdout.write(f"  would {verb} {rows} {label} row(s)")
        self.stdout.write("Dry run: nothing was changed.")
