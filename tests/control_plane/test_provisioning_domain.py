"""Custom domain, Route 53 alias and teardown: Stubber with exact parameters, and moto for a
whole create / re-run / delete cycle against a stateful AWS."""

import boto3
import moto.settings
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from django_aws_api_gateway_websockets import aws, provisioning
from django_aws_api_gateway_websockets.models import ApiGateway

from .test_provisioning import API, BASE

pytestmark = pytest.mark.django_db

DOMAIN = "ws.example.com"
CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"
GATEWAY_DOMAIN = "d-xyz.execute-api.eu-west-1.amazonaws.com"
CONFIG = {
    "ApiGatewayDomainName": GATEWAY_DOMAIN,
    "HostedZoneId": "ZAPIGW",
    "CertificateArn": CERT,
    "EndpointType": "REGIONAL",
    "SecurityPolicy": "TLS_1_2",
}
ALIAS = {"HostedZoneId": "ZAPIGW", "DNSName": GATEWAY_DOMAIN, "EvaluateTargetHealth": False}
CHANGE_INFO = {"ChangeInfo": {"Id": "c1", "Status": "PENDING", "SubmittedAt": "2026-01-01T00:00:00Z"}}


@pytest.fixture
def record():
    return ApiGateway.objects.create(
        api_name="chat",
        target_base_endpoint=BASE,
        region="eu-west-1",
        api_id=API,
        api_created=True,
        deployment_id="dep1",
        domain_name=DOMAIN,
        certificate_arn=CERT,
        hosted_zone_id="Z123",
        tags={"team": "web"},
    )


@pytest.fixture
def stubs():
    """Stubbed apigatewayv2, route53 and acm clients, checked for unused expectations."""
    aws.clear_clients()
    clients = {}
    for service in ("apigatewayv2", "route53", "acm"):
        client = aws.get_client(service, region="eu-west-1")
        client.stubber = Stubber(client)
        client.stubber.activate()
        clients[service] = client
    yield clients
    for client in clients.values():
        client.stubber.assert_no_pending_responses()
        client.stubber.deactivate()
    aws.clear_clients()


def certificate(stubs, status="ISSUED"):
    stubs["acm"].stubber.add_response(
        "describe_certificate", {"Certificate": {"CertificateArn": CERT, "Status": status}}, {"CertificateArn": CERT}
    )


def alias_lookup(stubs, record_sets):
    stubs["route53"].stubber.add_response(
        "list_resource_record_sets",
        {"ResourceRecordSets": record_sets, "IsTruncated": False, "MaxItems": "1"},
        {"HostedZoneId": "Z123", "StartRecordName": DOMAIN, "StartRecordType": "A", "MaxItems": "1"},
    )


def alias_change(stubs, action, target=ALIAS):
    stubs["route53"].stubber.add_response(
        "change_resource_record_sets",
        CHANGE_INFO,
        {
            "HostedZoneId": "Z123",
            "ChangeBatch": {
                "Changes": [
                    {"Action": action, "ResourceRecordSet": {"Name": DOMAIN, "Type": "A", "AliasTarget": target}}
                ]
            },
        },
    )


def create(record, stubs, **kwargs):
    return provisioning.create_custom_domain(
        record, client=stubs["apigatewayv2"], route53=stubs["route53"], acm=stubs["acm"], **kwargs
    )


def expect_new_domain(stubs):
    """The calls that create the domain, its mapping and the alias (none of them exists yet)."""
    apigw = stubs["apigatewayv2"].stubber
    certificate(stubs)
    apigw.add_client_error(
        "get_domain_name", "NotFoundException", http_status_code=404, expected_params={"DomainName": DOMAIN}
    )
    apigw.add_response(
        "create_domain_name",
        {"DomainName": DOMAIN, "DomainNameConfigurations": [CONFIG]},
        {
            "DomainName": DOMAIN,
            "Tags": {"team": "web"},
            "DomainNameConfigurations": [
                {"CertificateArn": CERT, "EndpointType": "REGIONAL", "SecurityPolicy": "TLS_1_2"}
            ],
        },
    )
    apigw.add_response("get_api_mappings", {"Items": []}, {"DomainName": DOMAIN})
    apigw.add_response(
        "create_api_mapping", {"ApiMappingId": "m1"}, {"ApiId": API, "DomainName": DOMAIN, "Stage": "production"}
    )
    alias_lookup(stubs, [])
    alias_change(stubs, "UPSERT")


def test_creates_domain_mapping_and_alias(record, stubs):
    expect_new_domain(stubs)
    plan = create(record, stubs)
    assert plan.steps == [
        f"create custom domain {DOMAIN} (REGIONAL, TLS 1.2)",
        f"map {DOMAIN} to API {API} stage 'production'",
        f"UPSERT Route 53 alias {DOMAIN} -> {GATEWAY_DOMAIN}",
    ]
    record.refresh_from_db()
    assert (record.api_gateway_domain_name, record.api_mapping_id, record.custom_domain_created) == (
        GATEWAY_DOMAIN,
        "m1",
        True,
    )
    assert record.websocket_url == f"wss://{DOMAIN}"
    assert (record.provisioning_status, record.last_error) == ("mapped", "")


def test_rerun_changes_nothing(record, stubs):
    apigw = stubs["apigatewayv2"].stubber
    certificate(stubs)
    apigw.add_response(
        "get_domain_name", {"DomainName": DOMAIN, "DomainNameConfigurations": [CONFIG]}, {"DomainName": DOMAIN}
    )
    apigw.add_response(
        "get_api_mappings",
        {"Items": [{"ApiId": API, "ApiMappingId": "m1", "Stage": "production"}]},
        {"DomainName": DOMAIN},
    )
    alias_lookup(
        stubs, [{"Name": DOMAIN + ".", "Type": "A", "AliasTarget": {**ALIAS, "DNSName": GATEWAY_DOMAIN + "."}}]
    )
    plan = create(record, stubs)
    assert not plan.changed and len(plan.unchanged) == 3
    record.refresh_from_db()
    assert record.api_mapping_id == "m1" and record.custom_domain_created


def test_new_certificate_updates_the_domain(record, stubs):
    apigw = stubs["apigatewayv2"].stubber
    certificate(stubs)
    old = {**CONFIG, "CertificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/old"}
    apigw.add_response("get_domain_name", {"DomainNameConfigurations": [old]}, {"DomainName": DOMAIN})
    apigw.add_response(
        "update_domain_name",
        {"DomainNameConfigurations": [CONFIG]},
        {
            "DomainName": DOMAIN,
            "DomainNameConfigurations": [
                {"CertificateArn": CERT, "EndpointType": "REGIONAL", "SecurityPolicy": "TLS_1_2"}
            ],
        },
    )
    apigw.add_response(
        "get_api_mappings",
        {"Items": [{"ApiId": API, "ApiMappingId": "m1", "Stage": "production"}]},
        {"DomainName": DOMAIN},
    )
    alias_lookup(stubs, [{"Name": DOMAIN + ".", "Type": "A", "AliasTarget": ALIAS}])
    assert create(record, stubs).steps == [f"update custom domain {DOMAIN} (certificate, REGIONAL, TLS 1.2)"]


def test_certificate_not_issued_stops_before_any_change(record, stubs):
    certificate(stubs, status="PENDING_VALIDATION")
    with pytest.raises(provisioning.ProvisioningError, match="is PENDING_VALIDATION, not ISSUED"):
        create(record, stubs)
    record.refresh_from_db()
    assert record.custom_domain_created is False


@pytest.mark.parametrize("failing", ["create_api_mapping", "change_resource_record_sets"])
def test_failure_leaves_the_flag_down_and_a_rerun_completes(record, stubs, failing):
    apigw = stubs["apigatewayv2"].stubber
    certificate(stubs)
    apigw.add_client_error("get_domain_name", "NotFoundException", http_status_code=404)
    apigw.add_response("create_domain_name", {"DomainNameConfigurations": [CONFIG]}, None)
    apigw.add_response("get_api_mappings", {"Items": []}, {"DomainName": DOMAIN})
    if failing == "create_api_mapping":
        apigw.add_client_error("create_api_mapping", "ConflictException", "mapping exists", http_status_code=409)
    else:
        apigw.add_response("create_api_mapping", {"ApiMappingId": "m1"}, None)
        alias_lookup(stubs, [])
        stubs["route53"].stubber.add_client_error(
            "change_resource_record_sets", "InvalidChangeBatch", "bad", http_status_code=400
        )
    with pytest.raises(provisioning.ProvisioningError, match=f"{failing} failed"):
        create(record, stubs)
    record.refresh_from_db()
    assert record.custom_domain_created is False and record.api_gateway_domain_name == GATEWAY_DOMAIN
    # The domain step is recorded; the error that stopped the run is kept in full.
    assert record.provisioning_status == "domain_created" and record.last_error.startswith(f"{failing} failed: ")
    # Re-run: the domain exists now; what is missing is made, nothing is made twice.
    certificate(stubs)
    apigw.add_response("get_domain_name", {"DomainNameConfigurations": [CONFIG]}, {"DomainName": DOMAIN})
    if failing == "create_api_mapping":
        apigw.add_response("get_api_mappings", {"Items": []}, {"DomainName": DOMAIN})
        apigw.add_response("create_api_mapping", {"ApiMappingId": "m1"}, None)
    else:
        apigw.add_response(
            "get_api_mappings", {"Items": [{"ApiId": API, "ApiMappingId": "m1", "Stage": "production"}]}, None
        )
    alias_lookup(stubs, [])
    alias_change(stubs, "UPSERT")
    create(record, stubs)
    record.refresh_from_db()
    assert record.custom_domain_created is True and record.api_mapping_id == "m1"
    assert (record.provisioning_status, record.last_error) == ("mapped", "")


def test_custom_domain_needs_a_created_api_and_its_fields(record):
    record.api_created = False
    with pytest.raises(provisioning.ProvisioningError, match="create the API first"):
        provisioning.create_custom_domain(record)
    record.api_created, record.certificate_arn = True, ""
    with pytest.raises(provisioning.ProvisioningError, match="set domain_name and certificate_arn"):
        provisioning.create_custom_domain(record)


def test_dry_run_reads_only(record, stubs):
    certificate(stubs)
    stubs["apigatewayv2"].stubber.add_client_error("get_domain_name", "NotFoundException", http_status_code=404)
    plan = create(record, stubs, dry_run=True)
    assert plan.steps == [
        f"create custom domain {DOMAIN} (REGIONAL, TLS 1.2)",
        f"map {DOMAIN} to API {API} stage 'production'",
        f"UPSERT Route 53 alias {DOMAIN} -> (the new domain)",
    ]
    record.refresh_from_db()
    assert record.custom_domain_created is False


# --- teardown -----------------------------------------------------------------------


def delete(record, stubs, **kwargs):
    return provisioning.delete_api(record, client=stubs["apigatewayv2"], route53=stubs["route53"], **kwargs)


def domain_with_mappings(stubs, mappings):
    apigw = stubs["apigatewayv2"].stubber
    apigw.add_response("get_domain_name", {"DomainNameConfigurations": [CONFIG]}, {"DomainName": DOMAIN})
    apigw.add_response("get_api_mappings", {"Items": mappings}, {"DomainName": DOMAIN})


def test_delete_removes_alias_domain_and_api(record, stubs):
    ApiGateway.objects.filter(pk=record.pk).update(
        custom_domain_created=True, api_mapping_id="m1", provisioning_status="mapped"
    )
    record.refresh_from_db()
    domain_with_mappings(stubs, [{"ApiId": API, "ApiMappingId": "m1", "Stage": "production"}])
    held = {**ALIAS, "DNSName": GATEWAY_DOMAIN + "."}
    alias_lookup(stubs, [{"Name": DOMAIN + ".", "Type": "A", "AliasTarget": held}])
    alias_change(stubs, "DELETE", target=held)  # exactly as Route 53 holds it
    apigw = stubs["apigatewayv2"].stubber
    apigw.add_response("delete_api_mapping", {}, {"ApiMappingId": "m1", "DomainName": DOMAIN})
    apigw.add_response("delete_domain_name", {}, {"DomainName": DOMAIN})
    apigw.add_response("get_api", {"ApiId": API}, {"ApiId": API})
    apigw.add_response("delete_api", {}, {"ApiId": API})
    plan = delete(record, stubs)
    assert plan.steps == [
        f"delete Route 53 alias {DOMAIN}",
        f"delete mapping {DOMAIN} -> API {API}",
        f"delete custom domain {DOMAIN}",
        f"delete API {API} with its routes, integrations and stages",
    ]
    record.refresh_from_db()
    assert (record.api_id, record.api_mapping_id, record.api_created, record.custom_domain_created) == (
        "",
        "",
        False,
        False,
    )
    assert record.provisioning_status == "pending"


def test_delete_after_a_partial_delete_skips_what_is_gone(record, stubs):
    ApiGateway.objects.filter(pk=record.pk).update(custom_domain_created=True)
    record.refresh_from_db()
    stubs["apigatewayv2"].stubber.add_client_error("get_domain_name", "NotFoundException", http_status_code=404)
    alias_lookup(
        stubs, [{"Name": "zz.example.com.", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.1"}]}]
    )
    stubs["apigatewayv2"].stubber.add_client_error("get_api", "NotFoundException", http_status_code=404)
    plan = delete(record, stubs)
    assert not plan.changed
    assert f"custom domain {DOMAIN} (already gone)" in plan.unchanged and f"API {API} (already gone)" in plan.unchanged
    record.refresh_from_db()
    assert record.api_id == ""


def test_shared_domain_keeps_domain_and_alias_and_loses_only_this_mapping(record, stubs):
    ApiGateway.objects.filter(pk=record.pk).update(custom_domain_created=True)
    record.refresh_from_db()
    domain_with_mappings(
        stubs,
        [
            {"ApiId": API, "ApiMappingId": "m1", "Stage": "production"},
            {"ApiId": "other", "ApiMappingId": "m2", "Stage": "production", "ApiMappingKey": "v2"},
        ],
    )
    apigw = stubs["apigatewayv2"].stubber
    apigw.add_response("delete_api_mapping", {}, {"ApiMappingId": "m1", "DomainName": DOMAIN})
    apigw.add_response("get_api", {"ApiId": API}, {"ApiId": API})
    apigw.add_response("delete_api", {}, {"ApiId": API})
    plan = delete(record, stubs)
    assert plan.steps == [
        f"delete mapping {DOMAIN} -> API {API}",
        f"delete API {API} with its routes, integrations and stages",
    ]
    assert f"custom domain {DOMAIN} (it serves other APIs)" in plan.unchanged


def test_alias_pointing_elsewhere_is_kept(record, stubs):
    ApiGateway.objects.filter(pk=record.pk).update(custom_domain_created=True)
    record.refresh_from_db()
    domain_with_mappings(stubs, [{"ApiId": API, "ApiMappingId": "m1", "Stage": "production"}])
    alias_lookup(
        stubs, [{"Name": DOMAIN + ".", "Type": "A", "AliasTarget": {**ALIAS, "DNSName": "elsewhere.example.net."}}]
    )
    stubs["apigatewayv2"].stubber.add_response("delete_api_mapping", {}, {"ApiMappingId": "m1", "DomainName": DOMAIN})
    stubs["apigatewayv2"].stubber.add_response("delete_domain_name", {}, {"DomainName": DOMAIN})
    stubs["apigatewayv2"].stubber.add_response("get_api", {"ApiId": API}, {"ApiId": API})
    stubs["apigatewayv2"].stubber.add_response("delete_api", {}, {"ApiId": API})
    plan = delete(record, stubs)
    assert f"Route 53 record {DOMAIN} points at elsewhere.example.net., not this API: kept" in plan.unchanged


def test_delete_dry_run_changes_nothing(record, stubs):
    ApiGateway.objects.filter(pk=record.pk).update(custom_domain_created=True)
    record.refresh_from_db()
    domain_with_mappings(stubs, [{"ApiId": API, "ApiMappingId": "m1", "Stage": "production"}])
    alias_lookup(stubs, [{"Name": DOMAIN + ".", "Type": "A", "AliasTarget": ALIAS}])
    stubs["apigatewayv2"].stubber.add_response("get_api", {"ApiId": API}, {"ApiId": API})
    plan = delete(record, stubs, dry_run=True)
    assert len(plan.steps) == 4
    record.refresh_from_db()
    assert record.api_id == API and record.custom_domain_created


# --- moto: a stateful AWS ------------------------------------------------------------


@pytest.fixture
def moto_aws(monkeypatch):
    monkeypatch.setattr(moto.settings, "ACM_VALIDATION_WAIT", -1)  # certificates are issued at once
    aws.clear_clients()
    with mock_aws():
        yield
    aws.clear_clients()


def test_domain_lifecycle_against_moto(moto_aws, record):
    apigw = boto3.client("apigatewayv2", region_name="eu-west-1")
    api_id = apigw.create_api(Name="chat", ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.action")[
        "ApiId"
    ]
    arn = boto3.client("acm", region_name="eu-west-1").request_certificate(DomainName=DOMAIN, ValidationMethod="DNS")[
        "CertificateArn"
    ]
    # moto's domains have no API Gateway target name, so no Route 53 alias here.
    ApiGateway.objects.filter(pk=record.pk).update(api_id=api_id, certificate_arn=arn, hosted_zone_id="")
    record.refresh_from_db()

    assert provisioning.create_custom_domain(record).changed
    mappings = apigw.get_api_mappings(DomainName=DOMAIN)["Items"]
    assert [(m["ApiId"], m["Stage"]) for m in mappings] == [(api_id, "production")]
    record.refresh_from_db()
    assert record.custom_domain_created and record.api_mapping_id == mappings[0]["ApiMappingId"]

    assert not provisioning.create_custom_domain(record).changed  # re-run: nothing made twice
    assert len(apigw.get_api_mappings(DomainName=DOMAIN)["Items"]) == 1

    provisioning.delete_api(record)
    assert apigw.get_domain_names()["Items"] == [] and apigw.get_apis()["Items"] == []
    record.refresh_from_db()
    assert not (record.api_id or record.api_created or record.custom_domain_created)
    assert not provisioning.delete_api(record).changed  # deleting again is harmless


def test_pending_certificate_against_moto(moto_aws, record, monkeypatch):
    monkeypatch.setattr(moto.settings, "ACM_VALIDATION_WAIT", 3600)
    arn = boto3.client("acm", region_name="eu-west-1").request_certificate(DomainName=DOMAIN, ValidationMethod="DNS")[
        "CertificateArn"
    ]
    record.certificate_arn = arn
    with pytest.raises(provisioning.ProvisioningError, match="PENDING_VALIDATION"):
        provisioning.create_custom_domain(record)
    assert boto3.client("apigatewayv2", region_name="eu-west-1").get_domain_names()["Items"] == []
