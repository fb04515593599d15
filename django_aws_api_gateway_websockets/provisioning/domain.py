"""The custom domain: ACM certificate check, REGIONAL domain (TLS 1.2), API mapping, and the
Route 53 alias that points the name at API Gateway."""

from .base import Plan, ProvisioningError, advance, aws_tags, call, client_for, find, recording, save

DOMAIN_CONFIG = {"EndpointType": "REGIONAL", "SecurityPolicy": "TLS_1_2"}


def _check_record(record):
    if not record.api_created or not record.api_id:
        raise ProvisioningError(f"create the API first (create_api_gateway --pk {record.pk}).")
    if not record.domain_name or not record.certificate_arn:
        raise ProvisioningError("set domain_name and certificate_arn first.")


def _check_certificate(record, acm):
    """API Gateway refuses a certificate that is not issued; say so in plain words first."""
    certificate = call("describe_certificate", acm.describe_certificate, CertificateArn=record.certificate_arn)
    status = certificate["Certificate"].get("Status")
    if status != "ISSUED":
        raise ProvisioningError(
            f"certificate {record.certificate_arn} is {status}, not ISSUED "
            "(finish its DNS validation in ACM, then run this again)."
        )


def create_custom_domain(record, *, dry_run=False, client=None, route53=None, acm=None):
    """Create (or complete) the custom domain, its API mapping and the Route 53 alias.
    ``provisioning_status`` becomes ``domain_created``, then ``mapped``; ``last_error``
    tells why a run stopped."""
    plan = Plan(dry_run)
    with recording(record, plan):
        _check_record(record)
        client = client_for(record, "apigatewayv2", client)
        _check_certificate(record, client_for(record, "acm", acm))
        config = _domain(record, client, plan)
        advance(record, "domain_created", plan)
        _mapping(record, client, plan, domain_exists=config is not None)
        if record.hosted_zone_id:
            _alias(record, plan, config, client_for(record, "route53", route53))
        if not dry_run:
            save(record, custom_domain_created=True)
        advance(record, "mapped", plan)
    return plan


def _domain(record, client, plan):
    """Create the domain or update its certificate; returns its configuration (``None``
    in a dry run when it does not exist yet)."""
    wanted = {"CertificateArn": record.certificate_arn, **DOMAIN_CONFIG}
    domain = find("get_domain_name", client.get_domain_name, DomainName=record.domain_name)
    if domain is None:
        if not plan.add(f"create custom domain {record.domain_name} (REGIONAL, TLS 1.2)"):
            return None
        domain = call(
            "create_domain_name",
            client.create_domain_name,
            DomainName=record.domain_name,
            DomainNameConfigurations=[wanted],
            Tags=aws_tags(record),
        )
    else:
        current = domain["DomainNameConfigurations"][0]
        if any(current.get(k) != v for k, v in wanted.items()):
            if plan.add(f"update custom domain {record.domain_name} (certificate, REGIONAL, TLS 1.2)"):
                domain = call(
                    "update_domain_name",
                    client.update_domain_name,
                    DomainName=record.domain_name,
                    DomainNameConfigurations=[wanted],
                )
        else:
            plan.keep(f"custom domain {record.domain_name}")
    config = domain["DomainNameConfigurations"][0]
    if not plan.dry_run and record.api_gateway_domain_name != config.get("ApiGatewayDomainName", ""):
        save(record, api_gateway_domain_name=config.get("ApiGatewayDomainName", ""))
    return config


def _mapping(record, client, plan, domain_exists):
    mappings = []
    if domain_exists:
        mappings = call("get_api_mappings", client.get_api_mappings, DomainName=record.domain_name)["Items"]
    mapping = next((m for m in mappings if m["ApiId"] == record.api_id and m["Stage"] == record.stage_name), None)
    if mapping is not None:
        plan.keep(f"mapping {record.domain_name} -> API {record.api_id} stage '{record.stage_name}'")
    elif plan.add(f"map {record.domain_name} to API {record.api_id} stage '{record.stage_name}'"):
        mapping = call(
            "create_api_mapping",
            client.create_api_mapping,
            ApiId=record.api_id,
            DomainName=record.domain_name,
            Stage=record.stage_name,
        )
    if mapping is not None and not plan.dry_run and record.api_mapping_id != mapping["ApiMappingId"]:
        save(record, api_mapping_id=mapping["ApiMappingId"])


def _alias(record, plan, config, route53):
    """UPSERT the alias unless Route 53 already points the name at this domain."""
    if config is None:  # dry run, the domain does not exist yet
        plan.add(f"UPSERT Route 53 alias {record.domain_name} -> (the new domain)")
        return
    if not config.get("ApiGatewayDomainName") or not config.get("HostedZoneId"):
        raise ProvisioningError(f"AWS gave no target name for {record.domain_name}; the alias cannot be made.")
    target = {
        "HostedZoneId": config["HostedZoneId"],
        "DNSName": config["ApiGatewayDomainName"],
        "EvaluateTargetHealth": False,
    }
    current = find_alias(record, route53)
    if current is not None and same_name(current["DNSName"], target["DNSName"]):
        plan.keep(f"Route 53 alias {record.domain_name} -> {target['DNSName']}")
    elif plan.add(f"UPSERT Route 53 alias {record.domain_name} -> {target['DNSName']}"):
        change_alias("UPSERT", record, target, route53)


def same_name(a, b):
    """DNS names compare without case and trailing dot (Route 53 adds it)."""
    return a.rstrip(".").lower() == (b or "").rstrip(".").lower()


def change_alias(action, record, target, route53):
    """UPSERT or DELETE the A alias record of ``domain_name`` in the record's hosted zone."""
    change = {
        "Action": action,
        "ResourceRecordSet": {"Name": record.domain_name, "Type": "A", "AliasTarget": target},
    }
    call(
        "change_resource_record_sets",
        route53.change_resource_record_sets,
        HostedZoneId=record.hosted_zone_id,
        ChangeBatch={"Changes": [change]},
    )


def find_alias(record, route53):
    """The alias target of the domain's A record in the zone, or ``None``."""
    found = call(
        "list_resource_record_sets",
        route53.list_resource_record_sets,
        HostedZoneId=record.hosted_zone_id,
        StartRecordName=record.domain_name,
        StartRecordType="A",
        MaxItems="1",
    )["ResourceRecordSets"]
    name = record.domain_name.rstrip(".") + "."
    for record_set in found:
        if record_set["Name"] == name and record_set["Type"] == "A" and "AliasTarget" in record_set:
            return record_set["AliasTarget"]
    return None


def delete_custom_domain(record, plan, client, route53=None):
    """Delete the alias and the domain, or only this API's mapping when the domain also
    serves other APIs. What is already gone is skipped; an alias pointing elsewhere is kept."""
    domain = find("get_domain_name", client.get_domain_name, DomainName=record.domain_name)
    config = domain["DomainNameConfigurations"][0] if domain else {}
    mappings = []
    if domain:
        mappings = call("get_api_mappings", client.get_api_mappings, DomainName=record.domain_name)["Items"]
    ours = [m for m in mappings if m["ApiId"] == record.api_id]
    shared = len(ours) < len(mappings)
    if record.hosted_zone_id and not shared:
        _delete_alias(record, plan, config.get("ApiGatewayDomainName") or record.api_gateway_domain_name, route53)
    for mapping in ours:
        if plan.add(f"delete mapping {record.domain_name} -> API {record.api_id}"):
            call(
                "delete_api_mapping",
                client.delete_api_mapping,
                ApiMappingId=mapping["ApiMappingId"],
                DomainName=record.domain_name,
            )
    if domain is None:
        plan.keep(f"custom domain {record.domain_name} (already gone)")
    elif shared:
        plan.keep(f"custom domain {record.domain_name} (it serves other APIs)")
    elif plan.add(f"delete custom domain {record.domain_name}"):
        call("delete_domain_name", client.delete_domain_name, DomainName=record.domain_name)
    if not plan.dry_run:
        save(record, api_gateway_domain_name="", api_mapping_id="", custom_domain_created=False)


def _delete_alias(record, plan, gateway_domain, route53):
    route53 = client_for(record, "route53", route53)
    target = find_alias(record, route53)
    if target is None:
        plan.keep(f"Route 53 alias {record.domain_name} (already gone)")
    elif not same_name(target["DNSName"], gateway_domain):
        plan.keep(f"Route 53 record {record.domain_name} points at {target['DNSName']}, not this API: kept")
    elif plan.add(f"delete Route 53 alias {record.domain_name}"):
        # DELETE must repeat the record set exactly as Route 53 holds it.
        change_alias("DELETE", record, target, route53)
