from django.core.management.base import CommandError

from ...models import ApiGateway
from ...provisioning.adopt import adopt_api
from ._provisioning import ProvisioningCommand


class Command(ProvisioningCommand):
    help = (
        "Fill a record from an API that already exists in AWS (e.g. created by a CloudFormation or SAM stack "
        "exported with export_api_gateway): the API's settings, the routes and their integrations (the target "
        "URL and the secret, or the Lambda function), the stage, the custom domain and its Route 53 alias. "
        "Reads AWS, writes only the record. Without --pk a new record is made."
    )

    def add_arguments(self, parser):
        parser.add_argument("--api-id", required=True, help="The id of the WEBSOCKET API in AWS.")
        parser.add_argument("--pk", type=int, help="The record to fill; default: a new record.")
        parser.add_argument("--stage-name", help="The stage Django sends through (needed when the API has several).")
        parser.add_argument("--region", help="The API's region (a new record's region field).")
        parser.add_argument(
            "--target-base-endpoint",
            help="For an AWS_PROXY (Lambda) API, which has no URL to read it from: the views' URL.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only print what the record would get.")

    def handle(
        self, *args, api_id, pk=None, stage_name=None, region=None, target_base_endpoint=None, dry_run=False, **options
    ):
        if pk is not None:
            record = self.get_record(pk)
            if region and record.region and region != record.region:
                raise CommandError(f"ApiGateway pk {pk} is in region {record.region}, not {region}.")
        else:
            record = ApiGateway(region=region or "")
        if target_base_endpoint:
            record.target_base_endpoint = target_base_endpoint
        self.stdout.write(
            f"{'Plan for adopting' if dry_run else 'Adopting'} API {api_id} into "
            f"{f'ApiGateway pk {pk}' if pk is not None else 'a new ApiGateway record'}:"
        )
        plan = self.run_step(adopt_api, record, api_id=api_id, stage_name=stage_name, dry_run=dry_run)
        if plan.drift:
            self.stdout.write("What AWS holds that the record cannot say:")
            self.stdout.write("\n".join(f"  {text}" for _kind, text in plan.drift))
        if not dry_run:
            self.stdout.write(
                self.style.SUCCESS(
                    f"ApiGateway '{record.api_name}' (pk {record.pk}) records API {api_id}: {record.websocket_url}. "
                    f"Check it with: manage.py sync_api_gateway --pk {record.pk} --dry-run"
                )
            )
