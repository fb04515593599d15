"""Shared plumbing of the AWS commands: finding the record, printing a plan, failing clearly."""

from django.core.management.base import BaseCommand, CommandError

from ...models import ApiGateway
from ...provisioning import ProvisioningError


class ProvisioningCommand(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("--pk", type=int, required=True, help="Primary key of the ApiGateway record.")

    def get_record(self, pk):
        try:
            return ApiGateway.objects.get(pk=pk)
        except ApiGateway.DoesNotExist:
            raise CommandError(f"No ApiGateway record with pk {pk}.")

    def run_step(self, function, record, **kwargs):
        """Run a provisioning function and print one line per step (what changed, then what
        was already right); an AWS failure exits non-zero with AWS's code and message."""
        try:
            plan = function(record, **kwargs)
        except ProvisioningError as exc:
            raise CommandError(str(exc))
        prefix = "would " if plan.dry_run else ""
        for step in plan.steps:
            self.stdout.write(f"  {prefix}{step}")
        for item in plan.unchanged:
            self.stdout.write(f"  unchanged: {item}")
        if not plan.changed:
            self.stdout.write("  nothing to change")
        return plan

