from ... import provisioning
from ._provisioning import ProvisioningCommand


class Command(ProvisioningCommand):
    help = (
        "Reconcile the AWS API with its record (target URL, additional routes, secret, stage settings) "
        "and redeploy. --dry-run prints the plan and changes nothing."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--dry-run", action="store_true", help="Only print what would change.")
        parser.add_argument(
            "--rotate-secret", action="store_true", help="Generate a new integration secret and deploy it."
        )

    def handle(self, *args, pk, dry_run, rotate_secret, **options):
        record = self.get_record(pk)
        self.stdout.write(f"{'Plan for' if dry_run else 'Syncing'} '{record.api_name}' ({record.api_id or 'not created'}):")
        if rotate_secret and not dry_run:
            plan = self.run_step(provisioning.rotate_secret, record)
        else:
            if rotate_secret:
                self.stdout.write("  would rotate the integration secret on every integration")
            plan = self.run_step(provisioning.sync_api, record, dry_run=dry_run)
        if not dry_run:
            self.stdout.write(self.style.SUCCESS("In sync." if plan.changed else "Already in sync."))
