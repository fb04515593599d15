"""Shared plumbing of the AWS commands: finding the record, printing a plan, failing clearly."""

from django.core.management.base import BaseCommand, CommandError

from ...models import ApiGateway
from ...provisioning import ProvisioningError
from ...provisioning.base import reporting


class ProvisioningCommand(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("--pk", type=int, required=True, help="Primary key of the ApiGateway record.")

    def get_record(self, pk):
        try:
            return ApiGateway.objects.get(pk=pk)
        except ApiGateway.DoesNotExist:
            raise CommandError(f"No ApiGateway record with pk {pk}.") from None

    def run_step(self, function, record, **kwargs):
        """Run a provisioning function and print one line per step as it happens (what changes,
        and what was already right), so a run that fails half-way has shown what it already
        did; an AWS failure then exits non-zero with AWS's code and message."""
        prefix = "would " if kwargs.get("dry_run") else ""

        def show(kind, text):
            self.stdout.write(f"  {prefix}{text}" if kind == "step" else f"  unchanged: {text}")
            self.stdout.flush()

        try:
            with reporting(show):
                plan = function(record, **kwargs)
        except ProvisioningError as exc:
            raise CommandError(
                f"{exc} (the steps printed above ran in this order, the last one may not have completed; "
                "re-run the command to complete: it converges, with no duplicates)"
            ) from exc
        if not plan.changed:
            self.stdout.write("  nothing to change")
        return plan
