"""Tearing down what provisioning created. The record stays, so it can be created again."""

from .base import Plan, call, client_for, find, recording, save
from .domain import delete_custom_domain


def delete_api(record, *, dry_run=False, client=None, route53=None):
    """Delete the custom domain (and its alias) and the API; reset the record's AWS fields.
    Each field is cleared as soon as its resource is gone, so a failed run resumes.
    ``provisioning_status`` goes back to ``deployed`` once the domain is gone, to
    ``pending`` once the API is; ``last_error`` tells why a run stopped."""
    plan = Plan(dry_run)
    with recording(record, plan):
        client = client_for(record, "apigatewayv2", client)
        if record.domain_name and (
            record.custom_domain_created or record.api_mapping_id or record.api_gateway_domain_name
        ):
            delete_custom_domain(record, plan, client, route53)
            if not dry_run and record.provisioning_status in ("domain_created", "mapped"):
                save(record, provisioning_status="deployed")
        if not record.api_id:
            plan.keep("API (never created)")
        elif find("get_api", client.get_api, ApiId=record.api_id) is None:
            plan.keep(f"API {record.api_id} (already gone)")
        elif plan.add(f"delete API {record.api_id} with its routes, integrations and stages"):
            call("delete_api", client.delete_api, ApiId=record.api_id)
        if not dry_run:
            save(record, api_id="", api_endpoint="", deployment_id="", api_created=False, provisioning_status="pending")
            record.additional_routes.update(deployed=False, route_id="", integration_id="")
    return plan
