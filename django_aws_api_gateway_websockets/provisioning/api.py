"""The WEBSOCKET API itself: integrations, routes, route responses, stage and deployment.

``sync_api`` both creates and reconciles: it reads AWS's state, changes only what differs
from the record, and deploys when anything changed. A failed run is simply run again.
"""

import json

from .. import protocol
from .base import Plan, ProvisioningError, aws_tags, call, client_for, find, save

INTEGRATION_TIMEOUT_MS = protocol.INTEGRATION_TIMEOUT_SECONDS * 1000
TWO_WAY_RESPONSE_KEY = "$default"

DEFAULT_ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "connectionId": "$context.connectionId",
        "routeKey": "$context.routeKey",
        "eventType": "$context.eventType",
        "status": "$context.status",
        "integrationStatus": "$context.integrationStatus",
        "error": "$context.error.message",
        "sourceIp": "$context.identity.sourceIp",
    }
)


def desired_routes(record):
    """Route key -> (integration URL, two-way) that the record asks for."""
    base = record.target_base_endpoint
    if not base:
        raise ProvisioningError(
            f"set target_base_endpoint (e.g. https://www.example.com/ws/) first."
        )
    base = base if base.endswith("/") else base + "/"
    routes = {
        key: (base + path, key == "$default" and record.default_route_two_way)
        for key, path in protocol.ROUTE_KEYS.items()
    }
    for route in record.additional_routes.all():
        routes[route.route_key] = (route.integration_url, route.two_way)
    return routes


def integration_params(record, uri):
    """Everything an integration must have, except ``IntegrationType`` (fixed at creation)."""
    return {
        "IntegrationMethod": "POST",
        "IntegrationUri": uri,
        "ConnectionType": "INTERNET",
        "RequestParameters": protocol.request_parameters(record.integration_secret),
        "TimeoutInMillis": INTEGRATION_TIMEOUT_MS,
    }


def stage_settings(record):
    """Stage throttling and access logs; a blank field leaves AWS's value alone."""
    settings = {}
    throttling = {}
    if record.throttling_burst_limit is not None:
        throttling["ThrottlingBurstLimit"] = record.throttling_burst_limit
    if record.throttling_rate_limit is not None:
        throttling["ThrottlingRateLimit"] = record.throttling_rate_limit
    if throttling:
        settings["DefaultRouteSettings"] = throttling
    if record.access_log_destination_arn:
        settings["AccessLogSettings"] = {
            "DestinationArn": record.access_log_destination_arn,
            "Format": record.access_log_format or DEFAULT_ACCESS_LOG_FORMAT,
        }
    return settings


def _target_id(route):
    return (route or {}).get("Target", "").removeprefix("integrations/")


class _ApiSync:
    """One run of ``sync_api``: the record, the client, the plan, and whether a change
    still waits for a deployment."""

    def __init__(self, record, client, plan):
        self.record, self.client, self.plan = record, client, plan
        self.pending_marked = False

    @property
    def api_id(self):
        return self.record.api_id

    def change(self, text, route_key=None):
        """Add a step; returns whether to make it. Before the first real change the record
        forgets its deployment id, so a run that fails after it still deploys when re-run."""
        if not self.plan.add(text):
            return False
        if not self.pending_marked:
            self.pending_marked = True
            if self.record.deployment_id:
                save(self.record, deployment_id="")
        if route_key:
            self.record.additional_routes.filter(route_key=route_key).update(deployed=False)
        return True

    # --- the API -------------------------------------------------------------------

    def api(self):
        """Create the API, or reconcile its settings; returns whether it exists in AWS."""
        record = self.record
        api = find("get_api", self.client.get_api, ApiId=record.api_id) if record.api_id else None
        if api is None:
            if not self.change(f"create WEBSOCKET API '{record.api_name}'"):
                return False
            api = call(
                "create_api",
                self.client.create_api,
                Name=record.api_name,
                ProtocolType="WEBSOCKET",
                RouteSelectionExpression=record.route_selection_expression,
                ApiKeySelectionExpression=record.api_key_selection_expression,
                Description=record.api_description,
                Tags=aws_tags(record),
            )
            save(record, api_id=api["ApiId"], api_endpoint=api["ApiEndpoint"], deployment_id="", api_created=False)
            return True
        wanted = {
            "Name": record.api_name,
            "RouteSelectionExpression": record.route_selection_expression,
            "ApiKeySelectionExpression": record.api_key_selection_expression,
            "Description": record.api_description,
        }
        changes = {k: v for k, v in wanted.items() if api.get(k, "") != v}
        if changes:
            if self.change(f"update API settings: {', '.join(sorted(changes))}"):
                call("update_api", self.client.update_api, ApiId=record.api_id, **changes)
        else:
            self.plan.keep(f"API {record.api_id} '{record.api_name}'")
        self._tags(api)
        if api.get("ApiEndpoint") and record.api_endpoint != api["ApiEndpoint"] and not self.plan.dry_run:
            save(record, api_endpoint=api["ApiEndpoint"])
        return True

    def _tags(self, api):
        """Add or update the record's tags; tags set outside Django (cost allocation) stay."""
        current = api.get("Tags") or {}
        missing = {k: v for k, v in aws_tags(self.record).items() if current.get(k) != v}
        if missing and self.change(f"tag API: {', '.join(sorted(missing))}"):
            region = self.client.meta.region_name
            call(
                "tag_resource",
                self.client.tag_resource,
                ResourceArn=f"arn:aws:apigateway:{region}::/apis/{self.api_id}",
                Tags=missing,
            )

    # --- integrations and routes -----------------------------------------------------

    def routes(self, api_exists):
        routes, integrations = {}, {}
        if api_exists:
            items = call("get_routes", self.client.get_routes, ApiId=self.api_id)["Items"]
            routes = {r["RouteKey"]: r for r in items}
            items = call("get_integrations", self.client.get_integrations, ApiId=self.api_id)["Items"]
            integrations = {i["IntegrationId"]: i for i in items}
        desired = desired_routes(self.record)
        targeted = {_target_id(r) for r in routes.values()}
        # Integrations no route points at: left by a run that stopped between creating an
        # integration and its route. Reused by URI, deleted at the end if still unused.
        orphans = {i_id: i for i_id, i in integrations.items() if i_id not in targeted}
        for key, (uri, two_way) in desired.items():
            route_key = key if key not in protocol.ROUTE_KEYS else None
            integration_id = self._integration(key, uri, integrations, routes.get(key), orphans, route_key)
            self._route(key, two_way, routes.get(key), integration_id, route_key)
        kept_targets = {_target_id(r) for k, r in routes.items() if k in desired}
        for key, route in routes.items():
            if key not in desired:
                self._delete_route(route, integrations, kept_targets)
        for integration_id, integration in orphans.items():
            if self.change(f"delete unused integration {integration_id} (POST {integration.get('IntegrationUri')})"):
                call(
                    "delete_integration",
                    self.client.delete_integration,
                    ApiId=self.api_id,
                    IntegrationId=integration_id,
                )

    def _integration(self, key, uri, integrations, route, orphans, route_key):
        wanted = integration_params(self.record, uri)
        integration_id = _target_id(route)
        integration = integrations.get(integration_id)
        if integration is None:
            reusable = next((i_id for i_id, i in orphans.items() if i.get("IntegrationUri") == uri), None)
            if reusable:
                integration_id, integration = reusable, orphans.pop(reusable)
        if integration is None:
            if not self.change(f"create integration POST {uri} for route {key}", route_key):
                return "(new)"
            created = call(
                "create_integration",
                self.client.create_integration,
                ApiId=self.api_id,
                IntegrationType="HTTP_PROXY",
                **wanted,
            )
            return created["IntegrationId"]
        if any(integration.get(k) != v for k, v in wanted.items()):
            if self.change(f"update integration of route {key} (POST {uri}, mapped headers)", route_key):
                call(
                    "update_integration",
                    self.client.update_integration,
                    ApiId=self.api_id,
                    IntegrationId=integration_id,
                    **wanted,
                )
        else:
            self.plan.keep(f"integration of route {key} (POST {uri})")
        return integration_id

    def _route(self, key, two_way, route, integration_id, route_key):
        params = {"RouteKey": key, "Target": f"integrations/{integration_id}"}
        if two_way:
            params["RouteResponseSelectionExpression"] = TWO_WAY_RESPONSE_KEY
        label = f"route {key}" + (" (two-way)" if two_way else "")
        if route is None:
            if self.change(f"create {label}", route_key):
                route = call(
                    "create_route",
                    self.client.create_route,
                    ApiId=self.api_id,
                    AuthorizationType="NONE",
                    ApiKeyRequired=False,
                    **params,
                )
                if two_way:
                    self._create_route_response(route["RouteId"])
            return
        if route.get("Target") != params["Target"] or (
            two_way and route.get("RouteResponseSelectionExpression") != TWO_WAY_RESPONSE_KEY
        ):
            if self.change(f"point {label} at its integration", route_key):
                call("update_route", self.client.update_route, ApiId=self.api_id, RouteId=route["RouteId"], **params)
        else:
            self.plan.keep(label)
        self._route_response(route, two_way, route_key)

    def _route_response(self, route, two_way, route_key):
        """A two-way route needs a ``$default`` route response for Django's answer to reach
        the client; a one-way route must not have one."""
        responses = call(
            "get_route_responses", self.client.get_route_responses, ApiId=self.api_id, RouteId=route["RouteId"]
        )["Items"]
        existing = next((r for r in responses if r["RouteResponseKey"] == TWO_WAY_RESPONSE_KEY), None)
        if two_way and existing is None:
            if self.change(f"create route response for {route['RouteKey']} (two-way)", route_key):
                self._create_route_response(route["RouteId"])
        elif not two_way and existing is not None:
            if self.change(f"delete route response of {route['RouteKey']} (one-way)", route_key):
                call(
                    "delete_route_response",
                    self.client.delete_route_response,
                    ApiId=self.api_id,
                    RouteId=route["RouteId"],
                    RouteResponseId=existing["RouteResponseId"],
                )

    def _create_route_response(self, route_id):
        call(
            "create_route_response",
            self.client.create_route_response,
            ApiId=self.api_id,
            RouteId=route_id,
            RouteResponseKey=TWO_WAY_RESPONSE_KEY,
        )

    def _delete_route(self, route, integrations, kept_targets):
        if not self.change(f"delete route {route['RouteKey']} (no longer on the record)"):
            return
        call("delete_route", self.client.delete_route, ApiId=self.api_id, RouteId=route["RouteId"])
        integration_id = _target_id(route)
        if integration_id in integrations and integration_id not in kept_targets:
            call("delete_integration", self.client.delete_integration, ApiId=self.api_id, IntegrationId=integration_id)

    # --- stage and deployment -----------------------------------------------------------

    def stage(self, api_exists):
        """Create or update the stage; returns whether it still needs a first deployment."""
        record = self.record
        stage = None
        if api_exists:
            stage = find("get_stage", self.client.get_stage, ApiId=self.api_id, StageName=record.stage_name)
        settings = stage_settings(record)
        if stage is None:
            if self.change(f"create stage '{record.stage_name}'"):
                call(
                    "create_stage",
                    self.client.create_stage,
                    ApiId=self.api_id,
                    StageName=record.stage_name,
                    Description=record.stage_description,
                    **settings,
                )
            return True
        current_throttling = stage.get("DefaultRouteSettings", {})
        differs = any(current_throttling.get(k) != v for k, v in settings.get("DefaultRouteSettings", {}).items())
        if "AccessLogSettings" in settings and stage.get("AccessLogSettings") != settings["AccessLogSettings"]:
            differs = True
        if stage.get("Description", "") != record.stage_description:
            differs = True
        if differs:
            if self.change(f"update stage '{record.stage_name}' (description, throttling, access logs)"):
                call(
                    "update_stage",
                    self.client.update_stage,
                    ApiId=self.api_id,
                    StageName=record.stage_name,
                    Description=record.stage_description,
                    **settings,
                )
        else:
            self.plan.keep(f"stage '{record.stage_name}'")
        return not stage.get("DeploymentId")

    def deploy(self, stage_undeployed):
        record = self.record
        if not (self.plan.changed or stage_undeployed or not record.deployment_id or not record.api_created):
            self.plan.keep(f"deployment {record.deployment_id} of stage '{record.stage_name}'")
            return
        if not self.change(f"deploy stage '{record.stage_name}'"):
            return
        deployment = call(
            "create_deployment",
            self.client.create_deployment,
            ApiId=self.api_id,
            StageName=record.stage_name,
            Description=record.stage_description,
        )
        save(record, deployment_id=deployment["DeploymentId"], api_created=True)
        record.additional_routes.update(deployed=True)


def sync_api(record, *, dry_run=False, client=None):
    """Create or reconcile the API of ``record`` and deploy it. Returns the ``Plan``."""
    desired_routes(record)  # a record that cannot work fails before any AWS call
    run = _ApiSync(record, client_for(record, "apigatewayv2", client), Plan(dry_run))
    exists = run.api()
    run.routes(exists)
    undeployed = run.stage(exists)
    run.deploy(undeployed)
    return run.plan


def rotate_secret(record, *, client=None):
    """Give the record a new integration secret, put it on every integration, deploy.

    No request is refused at any moment (SPEC §6): the record is saved first, keeping the
    old secret as ``previous_integration_secret``, valid for ``WEBSOCKETS["secret_grace_seconds"]``
    from ``secret_rotated_at``; then AWS is updated. Requests in between carry the old secret
    and are accepted; processes with a cached record re-read it at the first request carrying
    the new one. A rotation whose AWS update fails restores the record as it was.
    """
    from django.utils import timezone

    from ..models import generate_integration_secret

    before = (record.integration_secret, record.previous_integration_secret, record.secret_rotated_at)
    save(
        record,
        integration_secret=generate_integration_secret(),
        previous_integration_secret=record.integration_secret,
        secret_rotated_at=timezone.now(),
    )
    try:
        plan = sync_api(record, client=client)
    except BaseException:
        current, previous, rotated_at = before
        save(record, integration_secret=current, previous_integration_secret=previous, secret_rotated_at=rotated_at)
        raise
    plan.add("keep the previous secret valid for the grace period")
    return plan
