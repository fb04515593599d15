"""Least-privilege IAM policies for one record: what the web servers (or, with the Lambda proxy
integration, the function's execution role) need to send, and what the deploying identity needs
to run the provisioning commands."""

import re

from .base import ProvisioningError

ACCOUNT_ID_RE = re.compile(r"\d{12}")
APIGATEWAY_ACTIONS = ["apigateway:GET", "apigateway:POST", "apigateway:PUT", "apigateway:PATCH", "apigateway:DELETE"]


def runtime_statements(record, region, account_id, api_id=None):
    """``api_id``: the API's id, by default the record's (the template export passes a
    ``${Api}`` placeholder, as it passes ``${AWS::Region}`` and ``${AWS::AccountId}``)."""
    api_id = api_id or record.api_id
    if not api_id:
        raise ProvisioningError(f"the API has no id yet; run create_api_gateway --pk {record.pk} first.")
    return [
        {
            # POST (send), GET (connection info) and DELETE (close) on this stage only.
            "Sid": "ManageThisStagesConnections",
            "Effect": "Allow",
            "Action": "execute-api:ManageConnections",
            "Resource": f"arn:aws:execute-api:{region}:{account_id}:{api_id}/{record.stage_name}/*/@connections/*",
        }
    ]


def deploy_statements(record, region):
    api = record.api_id or "*"  # before creation the id is unknown
    resources = [
        f"arn:aws:apigateway:{region}::/apis",
        f"arn:aws:apigateway:{region}::/apis/{api}",
        f"arn:aws:apigateway:{region}::/apis/{api}/*",
        f"arn:aws:apigateway:{region}::/tags/*",
    ]
    if record.domain_name:
        resources += [
            f"arn:aws:apigateway:{region}::/domainnames",
            f"arn:aws:apigateway:{region}::/domainnames/{record.domain_name}",
            f"arn:aws:apigateway:{region}::/domainnames/{record.domain_name}/*",
        ]
    statements = [
        {"Sid": "ManageThisWebSocketApi", "Effect": "Allow", "Action": APIGATEWAY_ACTIONS, "Resource": resources}
    ]
    if record.certificate_arn:
        statements.append(
            {
                "Sid": "CheckTheCertificate",
                "Effect": "Allow",
                "Action": "acm:DescribeCertificate",
                "Resource": record.certificate_arn,
            }
        )
    if record.hosted_zone_id:
        statements.append(
            {
                "Sid": "PointTheDomainAtTheApi",
                "Effect": "Allow",
                "Action": ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
                "Resource": f"arn:aws:route53:::hostedzone/{record.hosted_zone_id}",
            }
        )
    if record.integration_type == "AWS_PROXY" and record.lambda_function_arn:
        statements.append(
            {
                # The Lambda proxy integration: let API Gateway invoke the function (lambda_permission.py).
                "Sid": "LetApiGatewayInvokeTheFunction",
                "Effect": "Allow",
                "Action": ["lambda:GetPolicy", "lambda:AddPermission", "lambda:RemovePermission"],
                "Resource": record.lambda_function_arn,
            }
        )
    return statements


def iam_policy(record, kind, account_id=None):
    """The policy document; ``kind`` is ``"runtime"`` (needs ``account_id``) or ``"deploy"``."""
    region = record.region_name
    if kind == "runtime":
        if not ACCOUNT_ID_RE.fullmatch(str(account_id or "")):
            raise ProvisioningError(f"AWS account id must be 12 digits, got {account_id!r}.")
        statements = runtime_statements(record, region, account_id)
    elif kind == "deploy":
        statements = deploy_statements(record, region)
    else:
        raise ValueError(f"Unknown policy kind {kind!r}; use 'runtime' or 'deploy'.")
    return {"Version": "2012-10-17", "Statement": statements}
