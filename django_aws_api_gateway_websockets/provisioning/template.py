"""The record as a CloudFormation (or SAM) template: the same API that ``sync_api`` and
``create_custom_domain`` create, said declaratively, for teams that provision AWS with
reviewed templates.

Nothing is restated here: the routes come from ``desired_routes``, each integration's
properties from ``integration_params`` (the request-parameter mapping of ``protocol``), the
stage's throttling and access logs from ``stage_settings``, the domain's configuration from
``DOMAIN_CONFIG`` and the runtime policy from ``iam.runtime_statements``; the template only
puts them into resources. The integration secret is never written: the mapping carries a
``NoEcho`` parameter or a Secrets Manager dynamic reference in its place.
"""

import hashlib
import json
import re
from typing import Any

from .. import __version__
from .api import (
    INTEGRATION_TIMEOUT_MS,
    TWO_WAY_RESPONSE_KEY,
    api_tags,
    desired_routes,
    integration_params,
    stage_settings,
)
from .base import ProvisioningError, aws_tags, call, client_for, find
from .domain import DOMAIN_CONFIG
from .iam import runtime_statements
from .lambda_permission import invocation_uri, parse_function_arn

CLOUDFORMATION, SAM = "cloudformation", "sam"
FORMATS = (CLOUDFORMATION, SAM)
SAM_TRANSFORM = "AWS::Serverless-2016-10-31"

#: Where the integration secret comes from: a ``NoEcho`` parameter given at deploy time, or
#: a Secrets Manager secret resolved by CloudFormation (``{{resolve:secretsmanager:...}}``).
#: SSM ``SecureString`` is not offered: CloudFormation resolves ``ssm-secure`` references only
#: in a short list of resource properties, and an integration's mapping is not one of them.
PARAMETER, SECRETS_MANAGER = "parameter", "secretsmanager"
SECRET_SOURCES = (PARAMETER, SECRETS_MANAGER)
SECRET_PARAMETER = "IntegrationSecret"
SECRET_ID_PARAMETER = "IntegrationSecretId"

AWS_PROXY = "AWS_PROXY"
LAMBDA_INTEGRATION = "LambdaIntegration"
STAGE_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
#: CloudFormation's limit of resources in one template.
MAX_RESOURCES = 500

# Logical ids of the fixed resources (the adopt workflow and the docs name them).
API, STAGE, DOMAIN, MAPPING, ALIAS, POLICY, PERMISSION = (
    "Api",
    "Stage",
    "DomainName",
    "ApiMapping",
    "DomainAlias",
    "RuntimePolicy",
    "LambdaInvokePermission",
)


def _placeholder(name):
    """``${Name}``: a parameter, resource or pseudo parameter inside an ``Fn::Sub``."""
    return "${" + name + "}"


def _sub(text):
    return {"Fn::Sub": text}


def _ref(name):
    return {"Ref": name}


def _logical_ids(keys):
    """Route key -> a unique alphanumeric suffix (``$connect`` -> ``Connect``, ``chat.send``
    -> ``ChatSend``; a clash gets a number)."""
    taken, ids = set(), {}
    for key in keys:
        words = re.findall(r"[A-Za-z0-9]+", key)
        base = "".join(w[:1].upper() + w[1:] for w in words)[:200] or "Key"
        name, n = base, 2
        while name in taken:
            name, n = f"{base}{n}", n + 1
        taken.add(name)
        ids[key] = name
    return ids


def _secret_value(source):
    """What the secret header is mapped to: the static value, quoted as API Gateway wants it,
    with the secret itself supplied by CloudFormation at deploy time."""
    if source == PARAMETER:
        return _placeholder(SECRET_PARAMETER)
    return "{{resolve:secretsmanager:" + _placeholder(SECRET_ID_PARAMETER) + "}}"


def store_secret(record, secret_id, *, client=None):
    """Put the record's integration secret into the Secrets Manager secret ``secret_id``
    (created if missing) for a template exported with ``secret_source="secretsmanager"``;
    the value goes from the database to Secrets Manager and is never printed. Returns
    ``"created"`` or ``"updated"``."""
    client = client_for(record, "secretsmanager", client)
    existing = _find_secret(client, secret_id)
    if existing is None:
        call(
            "create_secret",
            client.create_secret,
            Name=secret_id,
            SecretString=record.integration_secret,
            Description=f"integration_secret of the WebSocket API '{record.api_name}' (X-Gateway-Secret)",
        )
        return "created"
    call("put_secret_value", client.put_secret_value, SecretId=secret_id, SecretString=record.integration_secret)
    return "updated"


def _find_secret(client, secret_id):
    # Secrets Manager answers a missing secret with ResourceNotFoundException, not NotFound.
    try:
        return find("describe_secret", client.describe_secret, SecretId=secret_id)
    except ProvisioningError as exc:
        if "ResourceNotFoundException" in str(exc):
            return None
        raise


def _parameters(source, secret_id=""):
    if source == PARAMETER:
        return {
            SECRET_PARAMETER: {
                "Type": "String",
                "NoEcho": True,
                "MinLength": 1,
                "Description": "The record's integration_secret (API Gateway sends it as X-Gateway-Secret). "
                "Never stored in the template.",
            }
        }
    return {
        SECRET_ID_PARAMETER: {
            "Type": "String",
            "MinLength": 1,
            **({"Default": secret_id} if secret_id else {}),
            "Description": "Name or ARN of the Secrets Manager secret whose SecretString is the record's "
            "integration_secret.",
        }
    }


def _integration(record, uri, secret):
    """An HTTP_PROXY integration with ``integration_params``: the mapping's secret becomes an
    ``Fn::Sub`` of the parameter (the only value that needs CloudFormation)."""
    params = integration_params(record, uri, secret=secret)
    mapping = {}
    for key, value in params["RequestParameters"].items():
        mapping[key] = _sub(value) if secret in value else value
    return {
        "Type": "AWS::ApiGatewayV2::Integration",
        "Properties": {
            "ApiId": _ref(API),
            "IntegrationType": "HTTP_PROXY",
            **params,
            "RequestParameters": mapping,
        },
    }


def _lambda_integration(record):
    return {
        "Type": "AWS::ApiGatewayV2::Integration",
        "Properties": {
            "ApiId": _ref(API),
            "IntegrationType": AWS_PROXY,
            "IntegrationMethod": "POST",
            # The function's own region and partition, as sync_api_gateway writes it.
            "IntegrationUri": invocation_uri(record.lambda_function_arn),
            "TimeoutInMillis": INTEGRATION_TIMEOUT_MS,
        },
    }


def _check(record, secret_source, template_format):
    if template_format not in FORMATS:
        raise ProvisioningError(f"unknown template format {template_format!r}; use {' or '.join(FORMATS)}.")
    if secret_source not in SECRET_SOURCES:
        raise ProvisioningError(f"unknown secret source {secret_source!r}; use {' or '.join(SECRET_SOURCES)}.")
    if record.integration_type == AWS_PROXY:
        parse_function_arn(record.lambda_function_arn)  # a ProvisioningError that says what is wrong
    if bool(record.domain_name) != bool(record.certificate_arn):
        raise ProvisioningError("a custom domain needs both domain_name and certificate_arn.")
    # The stage name goes into Fn::Sub strings (the runtime policy, the URL output): a value
    # the admin's validator would refuse, e.g. saved by code, must not inject a reference.
    if not STAGE_NAME_RE.fullmatch(record.stage_name or ""):
        raise ProvisioningError(f"stage_name {record.stage_name!r}: use letters, digits, '_' and '-' only.")


def export_template(record, template_format=CLOUDFORMATION, secret_source=PARAMETER, secret_id=""):
    """The template (a dict, JSON-serialisable) equivalent to what ``create_api_gateway``
    and ``create_custom_domain`` create for ``record``. ``secret_id``: the Secrets Manager
    secret's default name (with ``secret_source="secretsmanager"``)."""
    _check(record, secret_source, template_format)
    routes = desired_routes(record)
    lambda_proxy = record.integration_type == AWS_PROXY
    secret = _secret_value(secret_source)
    ids = _logical_ids(routes)
    resources = {
        API: {
            "Type": "AWS::ApiGatewayV2::Api",
            "Properties": {
                "Name": record.api_name,
                "ProtocolType": "WEBSOCKET",
                "RouteSelectionExpression": record.route_selection_expression,
                "ApiKeySelectionExpression": record.api_key_selection_expression,
                **({"Description": record.api_description} if record.api_description else {}),
                "Tags": api_tags(record),
            },
        }
    }
    if lambda_proxy:
        # One integration serves every route: the function's handler reads the route key.
        resources[LAMBDA_INTEGRATION] = _lambda_integration(record)
        resources[PERMISSION] = {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": record.lambda_function_arn,
                "Principal": "apigateway.amazonaws.com",
                "SourceArn": _sub("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/*"),
            },
        }
    route_ids = []
    for key, (uri, two_way) in routes.items():
        name = ids[key]
        integration = LAMBDA_INTEGRATION if lambda_proxy else f"Integration{name}"
        if not lambda_proxy:
            resources[integration] = _integration(record, uri, secret)
        route = {
            "ApiId": _ref(API),
            "RouteKey": key,
            "AuthorizationType": "NONE",
            "ApiKeyRequired": False,
            "Target": {"Fn::Join": ["/", ["integrations", _ref(integration)]]},
        }
        if two_way:
            route["RouteResponseSelectionExpression"] = TWO_WAY_RESPONSE_KEY
        resources[f"Route{name}"] = {"Type": "AWS::ApiGatewayV2::Route", "Properties": route}
        route_ids.append(f"Route{name}")
        if two_way:
            resources[f"RouteResponse{name}"] = {
                "Type": "AWS::ApiGatewayV2::RouteResponse",
                "Properties": {
                    "ApiId": _ref(API),
                    "RouteId": _ref(f"Route{name}"),
                    "RouteResponseKey": TWO_WAY_RESPONSE_KEY,
                },
            }
            route_ids.append(f"RouteResponse{name}")
    # A deployment is a snapshot: CloudFormation makes a new one only when its logical id
    # changes, so the id carries a digest of what it deploys, the API, integrations and
    # routes made so far (the secret is a reference: neither it nor a digest of it is here),
    # and the time of the last secret rotation, so a stack updated with a new secret deploys it.
    rotated = record.secret_rotated_at.isoformat() if record.secret_rotated_at else ""
    digest = hashlib.sha256(json.dumps([resources, rotated], sort_keys=True).encode()).hexdigest()
    deployment = f"Deployment{digest[:10]}"
    resources[deployment] = {
        "Type": "AWS::ApiGatewayV2::Deployment",
        "DependsOn": route_ids,
        "Properties": {
            "ApiId": _ref(API),
            **({"Description": record.stage_description} if record.stage_description else {}),
        },
    }
    resources[STAGE] = {
        "Type": "AWS::ApiGatewayV2::Stage",
        "Properties": {
            "ApiId": _ref(API),
            "StageName": record.stage_name,
            "DeploymentId": _ref(deployment),
            **({"Description": record.stage_description} if record.stage_description else {}),
            **stage_settings(record),
        },
    }
    outputs = {
        "ApiId": {"Description": "Record it: adopt_api_gateway --api-id <this>", "Value": _ref(API)},
        "ApiEndpoint": {"Value": {"Fn::GetAtt": [API, "ApiEndpoint"]}},
        "StageName": {"Value": _ref(STAGE)},
        "WebSocketUrl": {"Value": _sub(f"${{{API}.ApiEndpoint}}/{record.stage_name}")},
    }
    if record.domain_name:
        _domain(record, resources, outputs)
    # The runtime policy (what the web servers need to send), the same statements as
    # ``websocket_iam_policy --runtime``; attach it to their role.
    statements = runtime_statements(record, "${AWS::Region}", "${AWS::AccountId}", api_id=_placeholder(API))
    for statement in statements:
        statement["Resource"] = _sub(statement["Resource"])
    resources[POLICY] = {
        "Type": "AWS::IAM::ManagedPolicy",
        "Properties": {
            "Description": f"Send to, read and close the connections of the WebSocket API '{record.api_name}'.",
            "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
        },
    }
    outputs["RuntimePolicyArn"] = {"Description": "Attach to the web servers' role", "Value": _ref(POLICY)}
    if len(resources) > MAX_RESOURCES:
        raise ProvisioningError(
            f"the template would have {len(resources)} resources; CloudFormation allows {MAX_RESOURCES} in one "
            "template (each additional route adds two or three): split the routes over nested stacks by hand."
        )
    template: dict[str, Any] = {"AWSTemplateFormatVersion": "2010-09-09"}
    if template_format == SAM:
        template["Transform"] = SAM_TRANSFORM
    template.update(
        {
            "Description": f"WebSocket API '{record.api_name}' (ApiGateway pk {record.pk}), exported by "
            f"django-aws-api-gateway-websockets {__version__}",
            "Metadata": {
                "django-aws-api-gateway-websockets": {
                    "record": record.pk,
                    "api_name": record.api_name,
                    "secret": secret_source,
                }
            },
            "Parameters": {} if lambda_proxy else _parameters(secret_source, secret_id),
            "Resources": resources,
            "Outputs": outputs,
        }
    )
    if not template["Parameters"]:
        del template["Parameters"]  # an AWS_PROXY integration maps no secret
    return template


def _domain(record, resources, outputs):
    """The custom domain (REGIONAL, TLS 1.2), its mapping to the stage and, with a hosted
    zone, the Route 53 alias, as ``create_custom_domain`` makes them."""
    resources[DOMAIN] = {
        "Type": "AWS::ApiGatewayV2::DomainName",
        "Properties": {
            "DomainName": record.domain_name,
            "DomainNameConfigurations": [{"CertificateArn": record.certificate_arn, **DOMAIN_CONFIG}],
            **({"Tags": aws_tags(record)} if record.tags else {}),
        },
    }
    resources[MAPPING] = {
        "Type": "AWS::ApiGatewayV2::ApiMapping",
        "Properties": {"ApiId": _ref(API), "DomainName": _ref(DOMAIN), "Stage": _ref(STAGE)},
    }
    if record.hosted_zone_id:
        resources[ALIAS] = {
            "Type": "AWS::Route53::RecordSet",
            "Properties": {
                "HostedZoneId": record.hosted_zone_id,
                "Name": record.domain_name.rstrip(".") + ".",  # fully qualified, as Route 53 returns it
                "Type": "A",
                "AliasTarget": {
                    "DNSName": {"Fn::GetAtt": [DOMAIN, "RegionalDomainName"]},
                    "HostedZoneId": {"Fn::GetAtt": [DOMAIN, "RegionalHostedZoneId"]},
                    "EvaluateTargetHealth": False,
                },
            },
        }
    outputs["WebSocketUrl"] = {"Value": f"wss://{record.domain_name}"}
    outputs["DomainTarget"] = {
        "Description": "Point the domain's DNS record (alias or CNAME) here",
        "Value": {"Fn::GetAtt": [DOMAIN, "RegionalDomainName"]},
    }


def render(template, syntax="json"):
    """The template as text: JSON, or YAML (needs PyYAML; the long ``Fn::`` forms, which
    every YAML reader understands)."""
    if syntax == "json":
        return json.dumps(template, indent=2) + "\n"
    if syntax == "yaml":
        try:
            import yaml
        except ImportError as exc:  # PyYAML is not a dependency of the package
            raise ProvisioningError("YAML output needs PyYAML (pip install PyYAML); or use JSON.") from exc
        return yaml.safe_dump(template, sort_keys=False, default_flow_style=False, width=1000)
    raise ProvisioningError(f"unknown syntax {syntax!r}; use json or yaml.")
