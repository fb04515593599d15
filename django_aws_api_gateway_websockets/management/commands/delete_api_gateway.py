import sys

from django.core.management.base import CommandError

from ...provisioning import delete_api
from ._provisioning import ProvisioningCommand


class Command(ProvisioningCommand):
    help = "Delete the record's API (routes, integrations, stages), custom domain and Route 53 alias from AWS."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        parser.add_argument("--dry-run", action="store_true", help="Only print what would be deleted.")

    def handle(self, *args, pk, yes, dry_run, **options):
        record = self.get_record(pk)
        if not (yes or dry_run):
            if not sys.stdin.isatty():
                raise CommandError("Refusing to delete without --yes.")
            answer = input(f"Delete API {record.api_id} ('{record.api_name}') from AWS? Type 'yes': ")
            if answer != "yes":
                raise CommandError("Cancelled.")
        self.stdout.write(f"Deleting '{record.api_name}' ({record.api_id or 'not created'}):")
        self.run_step(delete_api, record, dry_run=dry_run)
        if not dry_run:
            self.stdout.write(self.style.SUCCESS("Deleted; the record is kept and can be created again."))
