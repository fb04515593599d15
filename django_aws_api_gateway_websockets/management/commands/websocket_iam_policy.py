import json

from botocore.exceptions import BotoCoreError, ClientError
from django.core.management.base import CommandError

from ... import aws
from ...provisioning import ProvisioningError, iam_policy
from ._provisioning import ProvisioningCommand


class Command(ProvisioningCommand):
    help = (
        "Print a least-privilege IAM policy for the record: --runtime (the web servers that send "
        "messages) or --deploy (whoever runs the provisioning commands)."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        kind = parser.add_mutually_exclusive_group(required=True)
        kind.add_argument("--runtime", action="store_const", const="runtime", dest="kind")
        kind.add_argument("--deploy", action="store_const", const="deploy", dest="kind")
        parser.add_argument(
            "--account-id", help="AWS account id for --runtime; default: asked from STS (GetCallerIdentity)."
        )

    def handle(self, *args, pk, kind, account_id, **options):
        record = self.get_record(pk)
        if kind == "runtime" and not account_id:
            account_id = self.caller_account(record)
        try:
            policy = iam_policy(record, kind, account_id)
        except ProvisioningError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(policy, indent=2))

    def caller_account(self, record):
        try:
            return aws.get_client("sts", region=record.region or None).get_caller_identity()["Account"]
        except (ClientError, BotoCoreError) as exc:
            raise CommandError(f"Cannot ask STS for the account id ({exc}); pass --account-id.") from exc
