from ...provisioning import sync_api
from ._provisioning import ProvisioningCommand


def add_creation_arguments(parser):
    """Options for a record whose API is not recorded (see docs/aws-provisioning.md)."""
    parser.add_argument(
        "--adopt",
        metavar="API_ID",
        help="Record this existing WEBSOCKET API as the record's (e.g. one made by the 4.1.0 release) "
        "instead of creating one, then reconcile it.",
    )
    parser.add_argument(
        "--force-create",
        action="store_true",
        help="Take over the record's 'creating' claim even if it is recent, and create an API even if AWS has "
        "an untagged API of the same name. Use only when no other run is active.",
    )


class Command(ProvisioningCommand):
    help = (
        "Create the AWS API Gateway WebSocket API of a record (integrations, routes, stage) and "
        "deploy it. Safe to re-run: it completes a run that failed and never duplicates anything."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        add_creation_arguments(parser)

    def handle(self, *args, pk, adopt=None, force_create=False, **options):
        record = self.get_record(pk)
        self.stdout.write(f"Creating API Gateway for '{record.api_name}' in {record.region_name}:")
        plan = self.run_step(sync_api, record, adopt=adopt, force_create=force_create)
        if plan.drift:
            self.stdout.write("\n".join(plan.drift_report()))
        self.stdout.write(self.style.SUCCESS(f"API {record.api_id} deployed: {record.websocket_url}"))
