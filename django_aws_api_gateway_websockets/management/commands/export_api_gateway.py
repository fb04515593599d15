from pathlib import Path

from django.core.management.base import CommandError

from ...provisioning import ProvisioningError
from ...provisioning.api import start_secret_rotation
from ...provisioning.base import save
from ...provisioning.template import (
    AWS_PROXY,
    FORMATS,
    PARAMETER,
    SECRET_SOURCES,
    SECRETS_MANAGER,
    export_template,
    render,
)
from ...provisioning.template import (
    store_secret as put_in_secrets_manager,
)
from ._provisioning import ProvisioningCommand


class Command(ProvisioningCommand):
    help = (
        "Write the record's API as a CloudFormation or SAM template: the API, its routes and integrations, "
        "the stage with its throttling, the deployment, the custom domain with its mapping and Route 53 alias, "
        "and the runtime IAM policy. The integration secret is a NoEcho parameter or a Secrets Manager "
        "reference, never the value. Reads only the database (and with --store-secret writes Secrets Manager)."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--format", choices=FORMATS, default=FORMATS[0], dest="template_format")
        parser.add_argument(
            "--secret",
            choices=SECRET_SOURCES,
            help="Where the stack gets the integration secret: a NoEcho parameter (IntegrationSecret, the default) "
            "or a Secrets Manager secret (IntegrationSecretId, resolved by CloudFormation; the default with "
            "--secret-id).",
        )
        parser.add_argument(
            "--secret-id", default="", help="The Secrets Manager secret's name or ARN (the parameter's default)."
        )
        parser.add_argument(
            "--store-secret",
            action="store_true",
            help="Put the record's integration secret into the --secret-id secret (created if missing) first; "
            "the value is never printed.",
        )
        parser.add_argument(
            "--rotate-secret",
            action="store_true",
            help="Give the record a new integration secret first (the previous one stays valid for "
            "WEBSOCKETS['secret_grace_seconds']); the template gets a new deployment, so a stack update "
            "with the new secret deploys it.",
        )
        parser.add_argument(
            "--syntax",
            choices=("json", "yaml"),
            help="Default: yaml when --output ends in .yaml or .yml, else json. YAML needs PyYAML.",
        )
        parser.add_argument("--output", help="Write to this file instead of standard output.")

    def handle(
        self,
        *args,
        pk,
        template_format,
        secret=None,
        secret_id="",
        store_secret=False,
        rotate_secret=False,
        syntax=None,
        output=None,
        **options,
    ):
        record = self.get_record(pk)
        secret = secret or (SECRETS_MANAGER if secret_id else PARAMETER)
        if store_secret and not (secret == SECRETS_MANAGER and secret_id):
            raise CommandError("--store-secret needs --secret-id (the Secrets Manager secret to write).")
        if (store_secret or rotate_secret) and record.integration_type == AWS_PROXY:
            raise CommandError("an AWS_PROXY (Lambda) API maps no integration secret: nothing to store or rotate.")
        if syntax is None:
            syntax = "yaml" if output and output.endswith((".yaml", ".yml")) else "json"
        try:
            text = render(export_template(record, template_format, secret, secret_id), syntax)  # checks first
            if rotate_secret:
                before = start_secret_rotation(record)
                self.stderr.write(
                    "Rotated the record's integration secret; the previous one stays valid for the grace period."
                )
            try:
                if store_secret:
                    done = put_in_secrets_manager(record, secret_id)
                    self.stderr.write(
                        f"{done.capitalize()} Secrets Manager secret {secret_id} with the record's secret."
                    )
            except ProvisioningError:
                if rotate_secret:  # the stack could not get the new secret: keep the old one
                    current, previous, rotated_at = before
                    save(
                        record,
                        integration_secret=current,
                        previous_integration_secret=previous,
                        secret_rotated_at=rotated_at,
                    )
                raise
            if rotate_secret:
                text = render(export_template(record, template_format, secret, secret_id), syntax)
        except ProvisioningError as exc:
            raise CommandError(f"Cannot export ApiGateway '{record.api_name}' (pk {pk}): {exc}") from exc
        if output:
            Path(output).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote {template_format} template of '{record.api_name}' to {output}")
        else:
            self.stdout.write(text, ending="")
