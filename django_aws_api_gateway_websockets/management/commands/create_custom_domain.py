from ...provisioning import create_custom_domain
from ._provisioning import ProvisioningCommand


class Command(ProvisioningCommand):
    help = (
        "Create the custom domain of a record (ACM certificate, REGIONAL, TLS 1.2), map it to the "
        "API stage and, with hosted_zone_id, UPSERT the Route 53 alias. Safe to re-run."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--dry-run", action="store_true", help="Only print what would change.")

    def handle(self, *args, pk, dry_run, **options):
        record = self.get_record(pk)
        self.stdout.write(
            f"{'Plan for' if dry_run else 'Creating'} custom domain {record.domain_name or '(none set)'}:"
        )
        self.run_step(create_custom_domain, record, dry_run=dry_run)
        if dry_run:
            return
        self.stdout.write(self.style.SUCCESS(f"wss://{record.domain_name} -> {record.api_gateway_domain_name}"))
        if not record.hosted_zone_id:
            self.stdout.write(
                f"No hosted_zone_id: create a DNS record (CNAME or alias) {record.domain_name} -> "
                f"{record.api_gateway_domain_name} with your DNS provider."
            )
