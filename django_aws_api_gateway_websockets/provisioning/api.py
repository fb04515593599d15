"""The WEBSOCKET API itself: integrations, routes, route responses, stage and deployment.

``sync_api`` both creates and reconciles: it reads AWS's state, changes only what differs
from the record, and deploys when anything changed. A failed run is simply run again.
Creating an API needs the record's claim (see ``claim.py``); what differs between AWS and
the record is reported as ``Plan.drift``; routes that exist only in AWS are kept unless
asked otherwise (``aws_only_routes``).
"""

import json

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
)
from django.core.exceptions import ValidationError

from .. import protocol
from .base import Plan, ProvisioningError, advance, aws_tags, call, client_for, describe, find, items, recording, save
from .claim import CREATING, RECORD_TAG, TAKEN_OVER, claim, find_in_aws, record_tag_value, release
from .lambda_permission import grant_invoke, invocation_uri

INTEGRATION_TIMEOUT_MS = protocol.INTEGRATION_TIMEOUT_SECONDS * 1000
TWO_WAY_RESPONSE_KEY = "$default"

HEADER_PARAM = protocol.HEADER_PARAM_PREFIX
# The 4.1.0 release's secret header; records upgraded from it accept it until a sync has
# replaced it with X-Gateway-Secret on every integration and deployed the stage.
LEGACY_SECRET_HEADER = protocol.HEADER_LEGACY_SECRET
LEGACY_SECRET_PARAM = HEADER_PARAM + LEGACY_SECRET_HEADER

# What a sync does with a route that exists in AWS but not on the record.
KEEP, IMPORT, DELETE = "keep", "import", "delete"
AWS_ONLY_ROUTE_MODES = (KEEP, IMPORT, DELETE)

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


#: ``ApiGateway.integration_type`` of the Lambda proxy integration (models.IntegrationType).
AWS_PROXY = "AWS_PROXY"


def uses_lambda(record):
    return record.integration_type == AWS_PROXY


def integration_type(record):
    """The ``IntegrationType`` of the record's integrations: the function's, or HTTP's."""
    return AWS_PROXY if uses_lambda(record) else "HTTP_PROXY"


def desired_routes(record):
    """Route key -> (integration URL, two-way) that the record asks for. With the Lambda proxy
    integration every route invokes the record's function (the handler runs a custom route's
    event through its ``integration_url``'s view, docs/lambda.md)."""
    if uses_lambda(record):
        uri = invocation_uri(record.lambda_function_arn)
        routes = {key: (uri, key == "$default" and record.default_route_two_way) for key in protocol.ROUTE_KEYS}
        for route in record.additional_routes.all():
            routes[route.route_key] = (uri, route.two_way)
        return routes
    base = record.target_base_endpoint
    if not base:
        raise ProvisioningError("set target_base_endpoint (e.g. https://www.example.com/ws/) first.")
    routes = {
        key: (protocol.integration_url(base, key), key == "$default" and record.default_route_two_way)
        for key in protocol.ROUTE_KEYS
    }
    for route in record.additional_routes.all():
        routes[route.route_key] = (route.integration_url, route.two_way)
    return routes


def integration_params(record, uri, secret=None):
    """Everything an integration must have, except ``IntegrationType`` (fixed at creation).
    ``secret``: what to map into the secret header instead of the record's (the template
    export passes a parameter placeholder, so the value never leaves the database). A Lambda
    proxy integration maps nothing: the function gets the whole request context."""
    if uses_lambda(record):
        return {
            "IntegrationMethod": "POST",
            "IntegrationUri": uri,
            "ConnectionType": "INTERNET",
            "TimeoutInMillis": INTEGRATION_TIMEOUT_MS,
        }
    return {
        "IntegrationMethod": "POST",
        "IntegrationUri": uri,
        "ConnectionType": "INTERNET",
        "RequestParameters": protocol.request_parameters(record.integration_secret if secret is None else secret),
        "TimeoutInMillis": INTEGRATION_TIMEOUT_MS,
    }


def api_tags(record):
    """The record's tags, and the tag naming the record (how a lost API is found again)."""
    return {**aws_tags(record), RECORD_TAG: record_tag_value(record)}


def update_params(current, wanted):
    """``UpdateIntegration`` merges ``RequestParameters`` into what AWS holds: a key that is
    not sent stays. A key is removed by sending it with an empty value (how Terraform's
    aws_apigatewayv2_integration removes one; the service model gives no other way)."""
    params = dict(wanted)
    mapped = wanted.get("RequestParameters") or {}
    stale = [key for key in (current.get("RequestParameters") or {}) if key not in mapped]
    if stale:
        params["RequestParameters"] = {**dict.fromkeys(stale, ""), **mapped}
    return params


def _shown(value):
    """A mapped value as a report may show it: static values (quoted) may be secrets."""
    return "(a static value)" if str(value).startswith("'") else repr(value)


#: What AWS takes for an integration property left out (a template may leave it out).
INTEGRATION_DEFAULTS = {"ConnectionType": "INTERNET"}


def _current(integration, name):
    return integration.get(name, INTEGRATION_DEFAULTS.get(name))


def integration_drift(integration, wanted):
    """What differs between an integration in AWS and what the record wants, in words."""
    parts = []
    for name in ("IntegrationUri", "IntegrationMethod", "ConnectionType", "TimeoutInMillis"):
        if _current(integration, name) != wanted[name]:
            parts.append(f"{name} {integration.get(name)!r} in AWS, {wanted[name]!r} in the record")
    current, want = integration.get("RequestParameters") or {}, wanted.get("RequestParameters") or {}
    for key in sorted(set(current) | set(want)):
        header = key.removeprefix(HEADER_PARAM)
        if key not in want:
            legacy = " (the 4.1.0 secret header)" if key == LEGACY_SECRET_PARAM else ""
            parts.append(f"mapped header {header} only in AWS{legacy}")
        elif key not in current:
            parts.append(f"mapped header {header} only in the record")
        elif current[key] != want[key]:
            static = str(want[key]).startswith("'") or str(current[key]).startswith("'")
            detail = "" if static else f": {_shown(current[key])} in AWS, {_shown(want[key])} in the record"
            parts.append(f"mapped header {header} differs{detail}")
    return "; ".join(parts)


def _made_by_this_package(integration, record=None):
    """An integration carrying our mapping (or the 4.1.0 release's secret header), or invoking
    the record's function."""
    params = integration.get("RequestParameters") or {}
    if HEADER_PARAM + protocol.HEADER_SOURCE_IP in params or LEGACY_SECRET_PARAM in params:
        return True
    return (
        record is not None
        and uses_lambda(record)
        and integration.get("IntegrationType") == AWS_PROXY
        and integration.get("IntegrationUri") == invocation_uri(record.lambda_function_arn)
    )


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

    def __init__(self, record, client, plan, aws_only_routes=KEEP):
        self.record, self.client, self.plan = record, client, plan
        self.aws_only_routes = aws_only_routes
        self.api_id = record.api_id
        self.pending_marked = False
        self.existed = False  # the API was in AWS before this run: drift is worth reporting
        self.legacy_left = []  # AWS-only routes kept whose integration sends the 4.1.0 header
        self.not_imported = {}  # route key -> why --import-aws-routes could not import it

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

    def differs(self, kind, text):
        if self.existed:
            self.plan.differs(kind, text)

    # --- the API -------------------------------------------------------------------

    def api(self, *, adopt=None, force_create=False):
        """Create (or adopt) the API, or reconcile its settings; returns whether it exists
        in AWS (``False`` only in a dry run that would create it)."""
        record = self.record
        if adopt:
            api = self._adopt(adopt)
        else:
            api = find("get_api", self.client.get_api, ApiId=record.api_id) if record.api_id else None
            if api is None:
                api, created = self._create(force_create)
                if api is None or created:
                    return api is not None
        self.existed = True
        wanted = {
            "Name": record.api_name,
            "RouteSelectionExpression": record.route_selection_expression,
            "ApiKeySelectionExpression": record.api_key_selection_expression,
            "Description": record.api_description,
        }
        changes = {k: v for k, v in wanted.items() if api.get(k, "") != v}
        if changes:
            for name, value in sorted(changes.items()):
                self.differs("different", f"API {name} {api.get(name, '')!r} in AWS, {value!r} in the record")
            if self.change(f"update API settings: {', '.join(sorted(changes))}"):
                call("update_api", self.client.update_api, ApiId=self.api_id, **changes)
        else:
            self.plan.keep(f"API {self.api_id} '{record.api_name}'")
        self._tags(api)
        if api.get("ApiEndpoint") and record.api_endpoint != api["ApiEndpoint"] and not self.plan.dry_run:
            save(record, api_endpoint=api["ApiEndpoint"])
        advance(record, "api_created", self.plan)
        return True

    def _record_api(self, api):
        """Save the API's id at once; the record now has its API (status ``api_created``)."""
        self.api_id = api["ApiId"]
        save(
            self.record,
            api_id=api["ApiId"],
            api_endpoint=api.get("ApiEndpoint", ""),
            deployment_id="",
            api_created=False,
            provisioning_status="api_created",
        )

    def _create(self, force_create):
        """No API is recorded (or the recorded one is gone): adopt the one a stopped run
        created, else create one, holding the record's claim. Returns ``(api, created)``."""
        record = self.record
        if record.api_id:
            self.plan.differs("only in record", f"API {record.api_id} (not in AWS any more)")
        if self.plan.dry_run:
            # A claim left by a stopped run: say whether its API would be adopted.
            found = (
                find_in_aws(record, self.client, force_create=force_create)
                if record.provisioning_status == CREATING
                else None
            )
            if found:
                self.plan.add(f"adopt API {found['ApiId']} '{found.get('Name')}' (tagged for this record)")
                self.api_id = found["ApiId"]
                return found, False
            self.plan.add(f"create WEBSOCKET API '{record.api_name}'")
            return None, False
        claimed = claim(record, force=force_create)
        if claimed is None:
            # Another run recorded an API while this one read the record: use it.
            api = find("get_api", self.client.get_api, ApiId=record.api_id)
            if api is None:
                raise ProvisioningError(f"API {record.api_id}, just recorded by another run, is not in AWS; run again.")
            self.api_id = record.api_id
            return api, False
        api_may_exist = False
        try:
            # A claim taken over from a stopped run: the API it may have made is looked up
            # (by the record tag) and adopted rather than created twice.
            found = find_in_aws(record, self.client, force_create=force_create) if claimed == TAKEN_OVER else None
            if found:
                self.change(
                    f"adopt API {found['ApiId']} '{found.get('Name')}' (tagged for this record by a run that stopped before recording it)"
                )
                self._record_api(found)
                return found, False
            self.change(f"create WEBSOCKET API '{record.api_name}'")
            api_may_exist = True
            try:
                api = self.client.create_api(
                    Name=record.api_name,
                    ProtocolType="WEBSOCKET",
                    RouteSelectionExpression=record.route_selection_expression,
                    ApiKeySelectionExpression=record.api_key_selection_expression,
                    Description=record.api_description,
                    Tags=api_tags(record),
                )
            except (ClientError, EndpointConnectionError, NoCredentialsError, ParamValidationError) as exc:
                api_may_exist = False  # AWS refused it, or it never left this machine
                raise ProvisioningError(f"create_api failed: {describe(exc)}") from exc
            except BotoCoreError as exc:  # e.g. a read timeout: AWS may have created it
                raise ProvisioningError(
                    f"create_api failed: {describe(exc)}. AWS may have created the API: the next run looks it up "
                    f"by its tag and adopts it."
                ) from exc
            self._record_api(api)
            return api, True
        finally:
            if record.provisioning_status == CREATING:  # stopped before an API was recorded
                release(record, api_may_exist=api_may_exist)

    def _adopt(self, api_id):
        """``--adopt API_ID``: record an existing API (e.g. made by the 4.1.0 release)."""
        record = self.record
        if record.api_id and record.api_id != api_id:
            raise ProvisioningError(
                f"ApiGateway '{record.api_name}' (pk {record.pk}) already records API {record.api_id}; "
                f"--adopt is for a record without an API (delete_api_gateway first, or correct api_id)."
            )
        api = find("get_api", self.client.get_api, ApiId=api_id)
        if api is None:
            raise ProvisioningError(f"--adopt {api_id}: AWS has no API {api_id} in {self.client.meta.region_name}.")
        if api.get("ProtocolType") != "WEBSOCKET":
            raise ProvisioningError(f"--adopt {api_id}: API {api_id} is {api.get('ProtocolType')}, not WEBSOCKET.")
        self.api_id = api_id
        if record.api_id != api_id and self.change(f"adopt API {api_id} '{api.get('Name')}'"):
            if claim(record, force=True) is None:
                raise ProvisioningError(f"another run recorded API {record.api_id} meanwhile; --adopt not applied.")
            try:
                self._record_api(api)
            finally:
                if record.provisioning_status == CREATING:
                    release(record)
        return api

    def _tags(self, api):
        """Add or update the record's tags; tags set outside Django (cost allocation) stay."""
        current = api.get("Tags") or {}
        missing = {k: v for k, v in api_tags(self.record).items() if current.get(k) != v}
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
            routes = {r["RouteKey"]: r for r in items("get_routes", self.client.get_routes, ApiId=self.api_id)}
            found = items("get_integrations", self.client.get_integrations, ApiId=self.api_id)
            integrations = {i["IntegrationId"]: i for i in found}
        desired = desired_routes(self.record)
        if self.aws_only_routes == IMPORT:
            for key, route in routes.items():
                if key not in desired:
                    self._import(key, route, integrations.get(_target_id(route)), desired)
        targeted = {_target_id(r) for r in routes.values()}
        # Integrations no route points at: left by a run that stopped between creating an
        # integration and its route. Reused by URI, deleted at the end if still unused.
        orphans = {i_id: i for i_id, i in integrations.items() if i_id not in targeted}
        for key, (uri, two_way) in desired.items():
            route_key = key if key not in protocol.ROUTE_KEYS else None
            if key not in routes:
                self.differs("only in record", f"route {key} -> POST {uri}" + (" (two-way)" if two_way else ""))
            integration_id = self._integration(key, uri, integrations, routes.get(key), orphans, route_key)
            route_id = self._route(key, two_way, routes.get(key), integration_id, route_key)
            if route_key:
                self._remember_ids(route_key, route_id, integration_id)
        kept_targets = {_target_id(r) for k, r in routes.items() if k in desired}
        for key, route in routes.items():
            if key not in desired:
                self._aws_only_route(route, integrations, kept_targets)
        for integration_id, integration in orphans.items():
            label = f"integration {integration_id} ({integration.get('IntegrationMethod', '?')} {integration.get('IntegrationUri', '')}), used by no route"
            if _made_by_this_package(integration, self.record) or self.aws_only_routes == DELETE:
                self.differs("only in AWS", f"{label}: deleted")
                if self.change(
                    f"delete unused integration {integration_id} (POST {integration.get('IntegrationUri')})"
                ):
                    call(
                        "delete_integration",
                        self.client.delete_integration,
                        ApiId=self.api_id,
                        IntegrationId=integration_id,
                    )
            else:
                self.differs(
                    "only in AWS", f"{label}: kept (not made by this package; --delete-aws-only-routes deletes it)"
                )
                self.plan.keep(f"unused integration {integration_id} (only in AWS)")

    def _remember_ids(self, route_key, route_id, integration_id):
        """Record the AWS ids of an additional route (one UPDATE, only when they changed)."""
        if self.plan.dry_run or not route_id or integration_id == "(new)":
            return
        self.record.additional_routes.filter(route_key=route_key).exclude(
            route_id=route_id, integration_id=integration_id
        ).update(route_id=route_id, integration_id=integration_id)

    def _import(self, key, route, integration, desired):
        """``--import-aws-routes``: an AWS-only route becomes an additional route."""
        uri = (integration or {}).get("IntegrationUri", "")
        kind = (integration or {}).get("IntegrationType", "no integration")
        if kind not in ("HTTP_PROXY", "HTTP") or not uri.startswith(("https://", "http://")):
            self.not_imported[key] = f"its integration is {kind} {uri}".rstrip()
            return
        two_way = route.get("RouteResponseSelectionExpression") == TWO_WAY_RESPONSE_KEY
        row = self.record.additional_routes.model(
            api_gateway=self.record,
            name=key[:63],
            route_key=key,
            integration_url=uri,
            two_way=two_way,
            route_id=route.get("RouteId", ""),
            integration_id=integration["IntegrationId"],
        )
        try:
            row.full_clean(exclude=["api_gateway"])
        except ValidationError as exc:
            self.not_imported[key] = "; ".join(exc.messages)
            return
        if self.plan.add(
            f"import route {key} from AWS as an additional route (POST {uri}{', two-way' if two_way else ''})"
        ):
            row.save()
        desired[key] = (uri, two_way)

    def _aws_only_route(self, route, integrations, kept_targets):
        key = route["RouteKey"]
        integration_id = _target_id(route)
        integration = integrations.get(integration_id) or {}
        target = f"{integration.get('IntegrationType', '?')} {integration.get('IntegrationUri', '')}".rstrip()
        two_way = " (two-way)" if route.get("RouteResponseSelectionExpression") == TWO_WAY_RESPONSE_KEY else ""
        label = f"route {key} -> {target}{two_way} [route {route['RouteId']}, integration {integration_id or 'none'}]"
        if self.aws_only_routes == DELETE:
            self.differs("only in AWS", f"{label}: deleted (--delete-aws-only-routes)")
            self._delete_route(route, integrations, kept_targets)
            return
        reason = f"; not imported: {self.not_imported[key]}" if key in self.not_imported else ""
        self.differs(
            "only in AWS",
            f"{label}: kept{reason} (--import-aws-routes adds it to the record, --delete-aws-only-routes deletes it)",
        )
        self.plan.keep(f"route {key} (only in AWS)")
        if LEGACY_SECRET_PARAM in (integration.get("RequestParameters") or {}):
            self.legacy_left.append(key)

    def _integration(self, key, uri, integrations, route, orphans, route_key):
        wanted = integration_params(self.record, uri)
        kind = integration_type(self.record)
        integration_id = _target_id(route)
        integration = integrations.get(integration_id)
        if integration is not None and integration.get("IntegrationType", kind) != kind:
            # The record changed integration type (HTTP <-> Lambda): AWS cannot change an
            # integration's type, so the route gets a new one; the old one is deleted if ours.
            self.differs(
                "different",
                f"route {key}: its integration {integration_id} is {integration.get('IntegrationType')} in AWS, "
                f"{kind} in the record",
            )
            if _made_by_this_package(integration, self.record):
                orphans[integration_id] = integration
            integration = None
        if integration is None:
            reusable = next(
                (
                    i_id
                    for i_id, i in orphans.items()
                    if i.get("IntegrationUri") == uri and i.get("IntegrationType", kind) == kind
                ),
                None,
            )
            if reusable:
                integration_id, integration = reusable, orphans.pop(reusable)
        if integration is None:
            if route is not None and integration_id not in integrations:
                self.differs("different", f"route {key}: its integration {integration_id or '(none)'} is not in AWS")
            label = f"{kind} POST" if kind == AWS_PROXY else "POST"
            if not self.change(f"create integration {label} {uri} for route {key}", route_key):
                return "(new)"
            created = call(
                "create_integration",
                self.client.create_integration,
                ApiId=self.api_id,
                IntegrationType=kind,
                **wanted,
            )
            return created["IntegrationId"]
        if any(_current(integration, k) != v for k, v in wanted.items()):
            self.differs(
                "different", f"integration {integration_id} of route {key}: {integration_drift(integration, wanted)}"
            )
            legacy = LEGACY_SECRET_PARAM in (integration.get("RequestParameters") or {})
            detail = (
                f"mapped headers: {protocol.HEADER_SECRET} replaces the 4.1.0 header {LEGACY_SECRET_HEADER}"
                if legacy
                else ("its settings" if uses_lambda(self.record) else "mapped headers")
            )
            if self.change(f"update integration of route {key} (POST {uri}, {detail})", route_key):
                call(
                    "update_integration",
                    self.client.update_integration,
                    ApiId=self.api_id,
                    IntegrationId=integration_id,
                    **update_params(integration, wanted),
                )
        else:
            self.plan.keep(f"integration of route {key} (POST {uri})")
        return integration_id

    def _route(self, key, two_way, route, integration_id, route_key):
        """Create or fix the route; returns its RouteId (blank in a dry run creating it)."""
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
                return route["RouteId"]
            return ""
        if route.get("Target") != params["Target"] or (
            two_way and route.get("RouteResponseSelectionExpression") != TWO_WAY_RESPONSE_KEY
        ):
            if integration_id != "(new)" and route.get("Target") != params["Target"]:
                self.differs(
                    "different", f"route {key}: target {route.get('Target')} in AWS, {params['Target']} wanted"
                )
            if two_way and route.get("RouteResponseSelectionExpression") != TWO_WAY_RESPONSE_KEY:
                self.differs("different", f"route {key}: one-way in AWS, two-way in the record")
            if self.change(f"point {label} at its integration", route_key):
                call("update_route", self.client.update_route, ApiId=self.api_id, RouteId=route["RouteId"], **params)
        else:
            self.plan.keep(label)
        self._route_response(route, two_way, route_key)
        return route["RouteId"]

    def _route_response(self, route, two_way, route_key):
        """A two-way route needs a ``$default`` route response for Django's answer to reach
        the client; a one-way route must not have one."""
        responses = items(
            "get_route_responses", self.client.get_route_responses, ApiId=self.api_id, RouteId=route["RouteId"]
        )
        existing = next((r for r in responses if r["RouteResponseKey"] == TWO_WAY_RESPONSE_KEY), None)
        if two_way and existing is None:
            self.differs("different", f"route {route['RouteKey']}: no route response in AWS, two-way in the record")
            if self.change(f"create route response for {route['RouteKey']} (two-way)", route_key):
                self._create_route_response(route["RouteId"])
        elif not two_way and existing is not None:
            self.differs("different", f"route {route['RouteKey']}: two-way in AWS, one-way in the record")
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
        if not self.change(f"delete route {route['RouteKey']} (only in AWS)"):
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
            self.differs("only in record", f"stage '{record.stage_name}'")
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
        differences = self._stage_drift(stage, settings)
        if differences:
            self.differs("different", f"stage '{record.stage_name}': {'; '.join(differences)}")
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

    def _stage_drift(self, stage, settings):
        """What differs, in words; settings set only in AWS (the record's field blank) are
        reported as drift but left alone."""
        record, differences = self.record, []
        if stage.get("Description", "") != record.stage_description:
            differences.append(
                f"Description {stage.get('Description', '')!r} in AWS, {record.stage_description!r} in the record"
            )
        current = stage.get("DefaultRouteSettings", {})
        wanted = settings.get("DefaultRouteSettings", {})
        for name in ("ThrottlingBurstLimit", "ThrottlingRateLimit"):
            if name in wanted and current.get(name) != wanted[name]:
                differences.append(f"{name} {current.get(name)} in AWS, {wanted[name]} in the record")
            elif name not in wanted and current.get(name) is not None:
                self.differs(
                    "only in AWS",
                    f"stage '{record.stage_name}' {name} {current.get(name)} (the record's field is blank: left alone)",
                )
        if "AccessLogSettings" in settings and stage.get("AccessLogSettings") != settings["AccessLogSettings"]:
            theirs = (stage.get("AccessLogSettings") or {}).get("DestinationArn", "none")
            differences.append(
                f"access logs to {theirs} in AWS, to {record.access_log_destination_arn} in the record (or another format)"
            )
        elif "AccessLogSettings" not in settings and (stage.get("AccessLogSettings") or {}).get("DestinationArn"):
            self.differs(
                "only in AWS",
                f"stage '{record.stage_name}' access logs to {stage['AccessLogSettings']['DestinationArn']} (the record's field is blank: left alone)",
            )
        return differences

    def deploy(self, stage_undeployed):
        record = self.record
        if not (self.plan.changed or stage_undeployed or not record.deployment_id or not record.api_created):
            self.plan.keep(f"deployment {record.deployment_id} of stage '{record.stage_name}'")
            advance(record, "deployed", self.plan)
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
        advance(record, "deployed", self.plan)

    def legacy_header(self):
        """A record upgraded from 4.1.0 stops accepting ``X-Ws-Gateway-Secret`` once the
        stage is deployed with integrations that send ``X-Gateway-Secret`` instead."""
        record = self.record
        if not record.accepts_legacy_secret_header:
            return
        if self.legacy_left:
            self.plan.differs(
                "legacy",
                f"accepts_legacy_secret_header stays on: route(s) {', '.join(sorted(self.legacy_left))} (only in AWS) "
                f"still send {LEGACY_SECRET_HEADER}; import them (--import-aws-routes) or delete them "
                f"(--delete-aws-only-routes)",
            )
            return
        if (
            self.plan.add(
                f"stop accepting the 4.1.0 header {LEGACY_SECRET_HEADER} (accepts_legacy_secret_header=False): "
                f"the deployed stage sends {protocol.HEADER_SECRET}"
            )
            and record.deployment_id
        ):  # deployed by this run, or already deployed and in sync
            save(record, accepts_legacy_secret_header=False)


def sync_api(
    record, *, dry_run=False, client=None, aws_only_routes=KEEP, adopt=None, force_create=False, lambda_client=None
):
    """Create or reconcile the API of ``record`` and deploy it. Returns the ``Plan``.

    ``aws_only_routes``: what to do with routes that exist only in AWS: ``"keep"`` (report
    them as drift), ``"import"`` (add them to the record as additional routes) or
    ``"delete"``. ``adopt``: the id of an existing API to record (a record without one).
    ``force_create``: create even if an untagged API of the record's name exists, and take
    over the record's claim even if it is recent (see ``claim.py``). ``lambda_client``: the
    ``lambda`` client granting API Gateway the right to invoke a Lambda record's function
    (``integration_type = AWS_PROXY``; default: the record region's).
    """
    if aws_only_routes not in AWS_ONLY_ROUTE_MODES:
        raise ValueError(f"aws_only_routes must be one of {', '.join(AWS_ONLY_ROUTE_MODES)}")
    plan = Plan(dry_run)
    with recording(record, plan):
        desired_routes(record)  # a record that cannot work fails before any AWS call
        run = _ApiSync(record, client_for(record, "apigatewayv2", client), plan, aws_only_routes)
        exists = run.api(adopt=adopt, force_create=force_create)
        run.routes(exists)
        if uses_lambda(record):
            if exists:
                grant_invoke(record, run.api_id, plan, client_for(record, "lambda", lambda_client))
            else:  # a dry run that would create the API
                plan.add(
                    f"add permission for API Gateway to invoke {record.lambda_function_arn} (lambda:AddPermission)"
                )
        if exists:
            advance(record, "routes_created", plan)
        undeployed = run.stage(exists)
        run.deploy(undeployed)
        run.legacy_header()
    return plan


def start_secret_rotation(record):
    """Save a new integration secret, keeping the current one valid as the previous secret
    for the grace period; AWS is not touched (``rotate_secret`` does that next, or a stack
    update for a template-managed API). Returns the fields as they were, to undo it."""
    from django.utils import timezone

    from ..models import generate_integration_secret

    before = (record.integration_secret, record.previous_integration_secret, record.secret_rotated_at)
    save(
        record,
        integration_secret=generate_integration_secret(),
        previous_integration_secret=record.integration_secret,
        secret_rotated_at=timezone.now(),
    )
    return before


def rotate_secret(record, *, client=None, **options):
    """Give the record a new integration secret, put it on every integration, deploy.

    No request is refused at any moment (docs/security.md): the record is saved first, keeping the
    old secret as ``previous_integration_secret``, valid for ``WEBSOCKETS["secret_grace_seconds"]``
    from ``secret_rotated_at``; then AWS is updated. Requests in between carry the old secret
    and are accepted; processes with a cached record re-read it at the first request carrying
    the new one. A rotation whose AWS update fails restores the record as it was.
    """
    before = start_secret_rotation(record)
    try:
        plan = sync_api(record, client=client, **options)
    except BaseException:
        current, previous, rotated_at = before
        save(record, integration_secret=current, previous_integration_secret=previous, secret_rotated_at=rotated_at)
        raise
    plan.add("keep the previous secret valid for the grace period")
    return plan
