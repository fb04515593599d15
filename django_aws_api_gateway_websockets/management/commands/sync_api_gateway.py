from ... import provisioning
from ._provisioning import ProvisioningCommand
from .create_api_gateway import add_creation_arguments


class Command(ProvisioningCommand):
    help = (
        "Reconcile the AWS API with its record (target URL, additional routes, secret, stage settings) "
        "and redeploy. --dry-run prints the plan and the drift and changes nothing. Routes that exist "
        "only in AWS are kept and reported unless --import-aws-routes or --delete-aws-only-routes."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--dry-run", action="store_true", help="Only print what would change, and the drift.")
        parser.add_argument(
            "--rotate-secret", action="store_true", help="Generate a new integration secret and deploy it."
        )
        aws_only = parser.add_mutually_exclusive_group()
        aws_only.add_argument(
            "--import-aws-routes",
            action="store_true",
            help="Add routes that exist only in AWS to the record as additional routes (route key, "
            "integration URL, two-way), then reconcile them.",
        )
        aws_only.add_argument(
            "--delete-aws-only-routes",
            action="store_true",
            help="Delete routes that exist only in AWS (and integrations no route uses).",
        )
        add_creation_arguments(parser)

    def handle(
        self,
        *args,
        pk,
        dry_run,
        rotate_secret,
        import_aws_routes=False,
        delete_aws_only_routes=False,
        adopt=None,
        force_create=False,
        **options,
    ):
        record = self.get_record(pk)
        mode = "import" if import_aws_routes else "delete" if delete_aws_only_routes else "keep"
        options = {"aws_only_routes": mode, "adopt": adopt, "force_create": force_create}
        self.stdout.write(
            f"{'Plan for' if dry_run else 'Syncing'} '{record.api_name}' ({record.api_id or 'not created'}):"
        )
        if rotate_secret and not dry_run:
            plan = self.run_step(provisioning.rotate_secret, record, **options)
        else:
            if rotate_secret:
                self.stdout.write("  would rotate the integration secret on every integration")
            plan = self.run_step(provisioning.sync_api, record, dry_run=dry_run, **options)
        if dry_run or plan.drift:
            self.stdout.write("\n".join(plan.drift_report()))
        if not dry_run:
            self.stdout.write(self.style.SUCCESS("In sync." if plan.changed else "Already in sync."))
