"""Fill a record from an API that exists in AWS (made by a CloudFormation / SAM stack, by
hand, or by another database's record), so Django can send to it and ``sync_api`` with
``dry_run`` reports drift between the stack's API and the record.

The opposite direction of ``sync_api``: AWS is only read, the record is written. Each field
comes from where ``sync_api`` would have put it: the API's settings and tags, the built-in
routes' integrations (``target_base_endpoint`` from the ``$connect`` integration's URL, the
secret from its mapping, or the Lambda function of an ``AWS_PROXY`` integration), the other
routes as additional routes, the stage (throttling, access logs, deployment), the custom
domain mapped to that stage and the Route 53 alias pointing at it.
"""

import re
from contextlib import nullcontext
from types import SimpleNamespace

from django.core.exceptions import ValidationError
from django.db import transaction

from .. import protocol
from .api import HEADER_PARAM, LEGACY_SECRET_PARAM, TWO_WAY_RESPONSE_KEY, _target_id
from .base import Plan, ProvisioningError, call, client_for, find, items, recording
from .claim import RECORD_TAG
from .domain import find_alias, same_name

SECRET_PARAM = HEADER_PARAM + protocol.HEADER_SECRET
LAMBDA_URI_RE = re.compile(
    r"arn:aws[a-z-]*:apigateway:[a-z0-9-]+:lambda:path/2015-03-31/functions/(?P<arn>.+)/invocations"
)
HTTP_TYPES = ("HTTP_PROXY", "HTTP")


def _static(value):
    """A mapped static value (``'x'``) without its quotes; ``None`` for a context variable."""
    value = str(value or "")
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "'" else None


class _Reader:
    """What AWS holds for one API, read once."""

    def __init__(self, client, api_id):
        self.client, self.api_id = client, api_id
        api = find("get_api", client.get_api, ApiId=api_id)
        if api is None:
            raise ProvisioningError(f"AWS has no API {api_id} in {client.meta.region_name}.")
        if api.get("ProtocolType") != "WEBSOCKET":
            raise ProvisioningError(f"API {api_id} is {api.get('ProtocolType')}, not WEBSOCKET.")
        self.api = api
        self.routes = {r["RouteKey"]: r for r in items("get_routes", client.get_routes, ApiId=api_id)}
        found = items("get_integrations", client.get_integrations, ApiId=api_id)
        self.integrations = {i["IntegrationId"]: i for i in found}
        missing = [key for key in protocol.ROUTE_KEYS if key not in self.routes]
        if missing:
            raise ProvisioningError(
                f"API {api_id} has no {', '.join(missing)} route: it is not a WebSocket API of this package."
            )

    def integration(self, key):
        return self.integrations.get(_target_id(self.routes[key])) or {}

    def two_way(self, key):
        return self.routes[key].get("RouteResponseSelectionExpression") == TWO_WAY_RESPONSE_KEY

    def stage(self, wanted):
        stages = items("get_stages", self.client.get_stages, ApiId=self.api_id)
        names = [s["StageName"] for s in stages]
        if wanted:
            for stage in stages:
                if stage["StageName"] == wanted:
                    return stage
            raise ProvisioningError(
                f"API {self.api_id} has no stage {wanted!r} (it has: {', '.join(names) or 'none'})."
            )
        if len(stages) != 1:
            raise ProvisioningError(
                f"API {self.api_id} has {len(stages)} stages ({', '.join(names) or 'none'}): name one with --stage-name."
            )
        return stages[0]

    def domain(self, stage_name):
        """The custom domain mapped to this API's stage, with its mapping; ``(None, None)``."""
        for domain in items("get_domain_names", self.client.get_domain_names):
            name = domain["DomainName"]
            mappings = call("get_api_mappings", self.client.get_api_mappings, DomainName=name).get("Items", [])
            for mapping in mappings:
                if mapping["ApiId"] == self.api_id and mapping["Stage"] == stage_name:
                    return domain, mapping
        return None, None


def _hosted_zone(record, route53, domain_name, target):
    """The Route 53 zone whose A alias for the domain points at ``target``, or ``""``."""
    zones = call("list_hosted_zones", route53.list_hosted_zones).get("HostedZones", [])
    fqdn = domain_name.rstrip(".").lower() + "."
    for zone in sorted(zones, key=lambda z: -len(z["Name"])):  # the most specific zone first
        if (
            zone.get("Config", {}).get("PrivateZone")
            or not fqdn.endswith("." + zone["Name"].lower())
            and fqdn != zone["Name"].lower()
        ):
            continue
        # find_alias reads these two fields of a record.
        zone_id = zone["Id"].split("/")[-1]
        alias = find_alias(SimpleNamespace(hosted_zone_id=zone_id, domain_name=domain_name), route53)
        if alias and same_name(alias["DNSName"], target):
            return zone_id
    return ""


def read_api(record, api_id, *, stage_name=None, client=None, route53=None):
    """The record's fields as AWS has them: ``(fields, additional routes, notes)``.
    ``notes``: what AWS holds that the record cannot say (reported by ``adopt_api``)."""
    client = client_for(record, "apigatewayv2", client)
    aws = _Reader(client, api_id)
    notes = []
    api = aws.api
    fields = {
        "api_id": api_id,
        "api_name": api["Name"],
        "api_description": api.get("Description", ""),
        "route_selection_expression": api.get("RouteSelectionExpression", record.route_selection_expression),
        "api_key_selection_expression": api.get("ApiKeySelectionExpression", record.api_key_selection_expression),
        "api_endpoint": api.get("ApiEndpoint", ""),
        "tags": {k: v for k, v in (api.get("Tags") or {}).items() if k != RECORD_TAG and not k.startswith("aws:")},
        "region": record.region or client.meta.region_name,
    }
    connect = aws.integration("$connect")
    kind = connect.get("IntegrationType", "")
    if kind == "AWS_PROXY":
        match = LAMBDA_URI_RE.fullmatch(connect.get("IntegrationUri", ""))
        if not match:
            raise ProvisioningError(
                f"the $connect integration's URI {connect.get('IntegrationUri')!r} is not a Lambda function's."
            )
        fields.update(integration_type="AWS_PROXY", lambda_function_arn=match["arn"])
        if not record.target_base_endpoint:
            raise ProvisioningError(
                "an AWS_PROXY API: set the record's target_base_endpoint (the views' URL) first, or pass --target-base-endpoint."
            )
    elif kind in HTTP_TYPES:
        uri = connect.get("IntegrationUri", "")
        suffix = protocol.ROUTE_KEYS["$connect"]
        if not uri.rstrip("/").endswith("/" + suffix):
            raise ProvisioningError(f"the $connect integration posts to {uri!r}, not to a URL ending in /{suffix}.")
        base = uri.rstrip("/")[: -len(suffix)]
        fields.update(integration_type="HTTP", lambda_function_arn="", target_base_endpoint=base)
        for key in protocol.ROUTE_KEYS:
            other = aws.integration(key)
            if other.get("IntegrationUri") != protocol.integration_url(base, key):
                notes.append(
                    f"route {key} posts to {other.get('IntegrationUri')!r}, not {protocol.integration_url(base, key)!r}"
                )
        mapping = connect.get("RequestParameters") or {}
        if _static(mapping.get(SECRET_PARAM)):
            fields["integration_secret"] = _static(mapping[SECRET_PARAM])
            fields["accepts_legacy_secret_header"] = False
        elif _static(mapping.get(LEGACY_SECRET_PARAM)):
            fields["integration_secret"] = _static(mapping[LEGACY_SECRET_PARAM])
            fields["accepts_legacy_secret_header"] = True
        else:
            notes.append("the $connect integration maps no secret header: the record keeps its own secret")
    else:
        raise ProvisioningError(f"the $connect integration is {kind or 'missing'}; HTTP_PROXY or AWS_PROXY expected.")
    fields["default_route_two_way"] = aws.two_way("$default")
    routes = []
    for key, route in aws.routes.items():
        if key in protocol.ROUTE_KEYS:
            continue
        integration = aws.integrations.get(_target_id(route)) or {}
        url = integration.get("IntegrationUri", "")
        if integration.get("IntegrationType") == "AWS_PROXY":
            url = fields.get("target_base_endpoint") or record.target_base_endpoint  # the Lambda reads the route key
        elif integration.get("IntegrationType") not in HTTP_TYPES:
            notes.append(
                f"route {key}: its integration is {integration.get('IntegrationType', 'missing')}; not recorded"
            )
            continue
        routes.append(
            {
                "route_key": key,
                "name": key[:63],
                "integration_url": url,
                "two_way": aws.two_way(key),
                "route_id": route["RouteId"],
                "integration_id": integration.get("IntegrationId", ""),
            }
        )
    stage = aws.stage(stage_name)
    throttling = stage.get("DefaultRouteSettings") or {}
    access = stage.get("AccessLogSettings") or {}
    fields.update(
        stage_name=stage["StageName"],
        stage_description=stage.get("Description", ""),
        throttling_burst_limit=throttling.get("ThrottlingBurstLimit"),
        throttling_rate_limit=throttling.get("ThrottlingRateLimit"),
        access_log_destination_arn=access.get("DestinationArn", ""),
        access_log_format=access.get("Format", "") if access.get("DestinationArn") else "",
        deployment_id=stage.get("DeploymentId", ""),
        api_created=True,
        provisioning_status="deployed",
    )
    domain, mapping = aws.domain(stage["StageName"])
    fields.update(
        domain_name="",
        certificate_arn="",
        hosted_zone_id="",
        api_gateway_domain_name="",
        api_mapping_id="",
        custom_domain_created=False,
    )
    if domain is not None:
        config = (domain.get("DomainNameConfigurations") or [{}])[0]
        target = config.get("ApiGatewayDomainName", "")
        fields.update(
            domain_name=domain["DomainName"],
            certificate_arn=config.get("CertificateArn", ""),
            api_gateway_domain_name=target,
            api_mapping_id=mapping["ApiMappingId"],
            custom_domain_created=True,
            provisioning_status="mapped",
        )
        if target:
            fields["hosted_zone_id"] = _hosted_zone(
                record, client_for(record, "route53", route53), domain["DomainName"], target
            )
        if not fields["hosted_zone_id"]:
            notes.append(f"no Route 53 alias of {domain['DomainName']} found: hosted_zone_id left blank")
    return fields, routes, notes


def _shown(name, value):
    return "(the mapped secret)" if "secret" in name else repr(value)


def adopt_api(record, api_id, *, stage_name=None, dry_run=False, client=None, route53=None):
    """Fill ``record`` (saved or new) from the API ``api_id``. Returns the ``Plan``: one step
    per field that changes; ``drift`` lists what AWS holds that the record cannot say."""
    if record.api_id and record.api_id != api_id:
        raise ProvisioningError(
            f"ApiGateway '{record.api_name}' (pk {record.pk}) records API {record.api_id}, not {api_id}; "
            "adopt into a new record, or delete_api_gateway first."
        )
    plan = Plan(dry_run)
    with recording(record, plan) if record.pk else nullcontext():
        fields, routes, notes = read_api(record, api_id, stage_name=stage_name, client=client, route53=route53)
        for name, value in fields.items():
            if getattr(record, name) != value:
                plan.add(f"set {name} = {_shown(name, value)}")
        current = {r.route_key: r for r in record.additional_routes.all()} if record.pk else {}
        for route in routes:
            row = current.pop(route["route_key"], None)
            if row is None or any(getattr(row, k) != v for k, v in route.items() if k != "name"):
                plan.add(
                    f"record route {route['route_key']} -> {route['integration_url']}{' (two-way)' if route['two_way'] else ''}"
                )
        for key in current:
            plan.add(f"remove additional route {key} (not in AWS)")
        for note in notes:
            plan.differs("different", note)
        if dry_run:
            return plan
        with transaction.atomic():
            for name, value in fields.items():
                setattr(record, name, value)
            record.last_error = ""
            try:
                record.full_clean()
            except ValidationError as exc:
                raise ProvisioningError(f"the record cannot hold API {api_id} as AWS has it: {exc}") from exc
            # An existing record: only these fields, so a concurrent admin edit of others stays.
            record.save(update_fields=[*fields, "last_error"] if record.pk else None)
            record.additional_routes.exclude(route_key__in=[r["route_key"] for r in routes]).delete()
            for route in routes:
                record.additional_routes.update_or_create(
                    route_key=route["route_key"],
                    defaults={**{k: v for k, v in route.items() if k != "route_key"}, "deployed": True},
                )
    return plan
