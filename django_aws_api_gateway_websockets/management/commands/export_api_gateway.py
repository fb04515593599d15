from pathlib import Path

from django.core.management.base import CommandError

from ...provisioning import ProvisioningError
from ...provisioning.template import FORMATS, PARAMETER, SECRET_SOURCES, export_template, render
from ._provisioning import ProvisioningCommand


class Command(ProvisioningCommand):
    help = (
        "Write the record's API as a CloudFormation or SAM template: the API, its routes and integrations, "
        "the stage with its throttling, the deployment, the custom domain with its mapping and Route 53 alias, "
        "and the runtime IAM policy. The integration secret is a NoEcho parameter or a Secrets Manager "
        "reference, never the value. Reads only the database."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--format", choices=FORMATS, default=FORMATS[0], dest="template_format")
        parser.add_argument(
            "--secret",
            choices=SECRET_SOURCES,
            default=PARAMETER,
            help="Where the stack gets the integration secret: a NoEcho parameter (IntegrationSecret, default) or "
            "a Secrets Manager secret (IntegrationSecretId, resolved by CloudFormation).",
        )
        parser.add_argument(
            "--syntax",
            choices=("json", "yaml"),
            help="Default: yaml when --output ends in .yaml or .yml, else json. YAML needs PyYAML.",
        )
        parser.add_argument("--output", help="Write to this file instead of standard output.")

    def handle(self, *args, pk, template_format, secret, syntax=None, output=None, **options):
        record = self.get_record(pk)
        if syntax is None:
            syntax = "yaml" if output and output.endswith((".yaml", ".yml")) else "json"
        try:
            text = render(export_template(record, template_format, secret), syntax)
        except ProvisioningError as exc:
            raise CommandError(f"Cannot export ApiGateway '{record.api_name}' (pk {pk}): {exc}") from exc
        if output:
            Path(output).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote {template_format} template of '{record.api_name}' to {output}")
        else:
            self.stdout.write(text, ending="")
