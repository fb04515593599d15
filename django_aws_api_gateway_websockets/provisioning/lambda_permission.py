"""The Lambda proxy integration's grant (docs/lambda.md#iam): the function's resource policy
lets ``apigateway.amazonaws.com`` invoke it for this API only (``lambda:AddPermission`` with the
API's ``execute-api`` ARN as ``SourceArn``). Without it API Gateway cannot call the function
and every route answers 500.

The statement's id names the API (``apigateway-websockets-<api id>``), so a sync finds its own
statement again: kept when it is right, replaced when it names another source, never doubled.
"""

import json
import re

from botocore.exceptions import BotoCoreError, ClientError

from .base import ProvisioningError, call, describe

STATEMENT_PREFIX = "apigateway-websockets-"
PRINCIPAL = "apigateway.amazonaws.com"
ACTION = "lambda:InvokeFunction"
# arn:aws:lambda:<region>:<account>:function:<name>[:<alias or version>]
FUNCTION_ARN_RE = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:"
    r"(?P<name>[A-Za-z0-9_-]{1,64})(?::(?P<qualifier>[A-Za-z0-9_$-]{1,128}))?"
)


def parse_function_arn(arn: str) -> "re.Match[str]":
    match = FUNCTION_ARN_RE.fullmatch(arn or "")
    if match is None:
        raise ProvisioningError(
            f"lambda_function_arn {arn!r} is not a Lambda function ARN "
            "(arn:aws:lambda:<region>:<account>:function:<name>): set it on the record first."
        )
    return match


def invocation_uri(arn: str) -> str:
    """The ``IntegrationUri`` of an ``AWS_PROXY`` integration calling function ``arn``."""
    match = parse_function_arn(arn)
    return f"arn:{match['partition']}:apigateway:{match['region']}:lambda:path/2015-03-31/functions/{arn}/invocations"


def source_arn(arn: str, region: str, api_id: str) -> str:
    """Every route and stage of API ``api_id`` (in the function's account)."""
    match = parse_function_arn(arn)
    return f"arn:{match['partition']}:execute-api:{region}:{match['account']}:{api_id}/*"


def _statements(client, arn):
    try:
        policy = client.get_policy(FunctionName=arn)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return []  # no resource policy yet (or no function: add_permission says which)
        raise ProvisioningError(f"get_policy failed: {describe(exc)}") from exc
    except BotoCoreError as exc:
        raise ProvisioningError(f"get_policy failed: {describe(exc)}") from exc
    return json.loads(policy.get("Policy") or "{}").get("Statement", [])


def _source_of(statement):
    condition = statement.get("Condition") or {}
    return (condition.get("ArnLike") or {}).get("AWS:SourceArn")


def _grants(statement, source):
    """A statement letting API Gateway invoke the function from ``source`` (another tool's, e.g.
    the exported template's ``AWS::Lambda::Permission``, counts as well as ours)."""
    principal = statement.get("Principal") or {}
    service = principal.get("Service") if isinstance(principal, dict) else None
    actions = statement.get("Action")
    actions = [actions] if isinstance(actions, str) else actions or []
    return (
        statement.get("Effect") == "Allow"
        and service == PRINCIPAL
        and any(action in (ACTION, "lambda:*") for action in actions)
        and _source_of(statement) == source
    )


def grant_invoke(record, api_id, plan, client):
    """Make the function's policy let API Gateway invoke it for ``api_id``; ``plan`` says what
    was done (a dry run changes nothing)."""
    arn = record.lambda_function_arn
    sid = STATEMENT_PREFIX + api_id
    wanted = source_arn(arn, record.region_name, api_id)
    label = f"permission for API Gateway to invoke {arn} from API {api_id}"
    statements = _statements(client, arn)
    mine = next((s for s in statements if s.get("Sid") == sid), None)
    if mine is not None and _source_of(mine) == wanted:
        plan.keep(label)
        return
    other = next((s for s in statements if s is not mine and _grants(s, wanted)), None)
    if mine is None and other is not None:
        plan.keep(f"{label} (statement {other.get('Sid')})")
        return
    if mine is not None:
        plan.differs("different", f"{label}: the function's statement {sid} names {_source_of(mine)!r}")
        if plan.add(f"replace {label}"):
            call("remove_permission", client.remove_permission, FunctionName=arn, StatementId=sid)
    elif not plan.add(f"add {label} (lambda:AddPermission)"):
        return
    call(
        "add_permission",
        client.add_permission,
        FunctionName=arn,
        StatementId=sid,
        Action=ACTION,
        Principal=PRINCIPAL,
        SourceArn=wanted,
    )
