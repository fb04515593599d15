from ...provisioning import sync_api
from ._provisioning import ProvisioningCommand


class Command(ProvisioningCommand):
    help = (
        "Create the AWS API Gateway WebSocket API of a record (integrations, routes, stage) and "
        "deploy it. Safe to re-run: it completes a run that failed and never duplicates anything."
    )

    def handle(self, *args, pk, **options):
        record = self.get_record(pk)
        self.stdout.write(f"Creating API Gateway for '{record.api_name}' in {record.region_name}:")
        self.run_step(sync_api, record)
        self.stdout.write(self.style.SUCCESS(f"API {record.api_id} deployed: {record.websocket_url}"))
