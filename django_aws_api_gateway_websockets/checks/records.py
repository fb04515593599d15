"""``check --deploy``: the ``ApiGateway`` records, one small function per id.

Each per-record function takes ``(record, name)`` and returns its messages; ``_record_messages``
runs them in the order the messages are listed (W037 or W031, W051, W032 or W045, W033/E034 per
target, W035, W036).
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import validate_host

from .. import aws, security
from ..gateway.records import LOCAL_API_ID_PREFIX, is_local_record, is_loopback_url
from .messages import Template

MIN_SECRET_LENGTH = 32  # generate_integration_secret gives 43 characters

W030 = Template(
    "W030",
    "No ApiGateway record exists.",
    hint="Create one in the admin (target_base_endpoint = https://<your site>/ws/), "
    "then run create_api_gateway --pk N.",
)
I052 = Template(
    "I052",
    "{name} is a local development record (never created in AWS); runwsgateway plays it.",
    hint="Harmless in production; delete it if this database never runs runwsgateway.",
)
W037 = Template(
    "W037",
    "{name} sends through a local gateway ({url}).",
    hint="A record that exists in AWS must send to AWS: clear management_endpoint_url.",
)
W031 = Template("W031", "{name} is not created and deployed in AWS.", hint="Run create_api_gateway --pk {pk}.")
W051 = Template(
    "W051",
    "{name} still accepts the 4.1.0 secret header X-Ws-Gateway-Secret (upgraded; integrations not re-synced).",
    hint="Run sync_api_gateway --pk {pk}: it maps X-Gateway-Secret on every integration, deploys, "
    "and stops accepting the old header.",
)
W032 = Template(
    "W032",
    "{name} has no integration secret: anyone who knows its api id can call your view.",
    hint="Run sync_api_gateway --pk {pk} --rotate-secret.",
)
W045 = Template(
    "W045",
    "{name} has an integration secret of {length} characters, shorter than {minimum}: it can be guessed.",
    hint="Run sync_api_gateway --pk {pk} --rotate-secret (a new secret has 43 characters).",
)
W046 = Template(
    "W046",
    "ApiGateway records {pks} share one integration secret: a request from any of these APIs passes for the others.",
    hint="Give each its own: run sync_api_gateway --pk N --rotate-secret for N in {rotate}.",
)
W033 = Template("W033", "{name} ({url}) is not https.", hint="API Gateway must call Django over HTTPS.")
E034 = Template(
    "E034",
    "{name}: host '{host}' is not in ALLOWED_HOSTS.",
    hint="Add it: Django would answer every API Gateway call with 400.",
)
W035 = Template(
    "W035",
    "CSRF_TRUSTED_ORIGINS does not cover {origin}, the site of {name}'s views and token view.",
    hint='Add "{origin}" (and the origin of any other page that fetches tokens) to CSRF_TRUSTED_ORIGINS: '
    "behind a TLS-terminating proxy Django's CSRF check needs it for the token POST.",
)
W036 = Template("W036", "{name} has routes not deployed in AWS: {routes}.", hint="Run sync_api_gateway --pk {pk}.")


def _record_messages(alias):
    from ..models import ApiGateway

    records = list(ApiGateway.objects.using(alias).prefetch_related("additional_routes"))
    if not records:
        return [W030()]
    messages = _shared_secret_messages(records)
    for record in records:
        name = f"ApiGateway '{record.api_name}' (pk {record.pk})"
        if _is_development_record(record):
            # runwsgateway's own development record (or a companion of an AWS one): nothing a
            # deployed site uses, so the production checks below do not apply to it.
            messages.append(I052(name=name))
            continue
        for check in RECORD_CHECKS:
            messages += check(record, name)
    return messages


def _local_endpoint(record, name):
    """W037: a record that exists in AWS sends through a local gateway."""
    if not aws.is_local_endpoint(record.management_endpoint_url):
        return []
    return [W037(name=name, url=record.management_endpoint_url)]


def _not_deployed(record, name):
    """W031: not created and deployed in AWS (a local endpoint is W037's)."""
    if aws.is_local_endpoint(record.management_endpoint_url) or (record.api_created and record.deployment_id):
        return []
    return [W031(name=name, pk=record.pk)]


def _legacy_secret_header(record, name):
    """W051: upgraded from 4.1.0, still accepting its secret header."""
    return [W051(name=name, pk=record.pk)] if record.accepts_legacy_secret_header else []


def _no_secret(record, name):
    """W032: no integration secret at all."""
    return [] if record.integration_secret else [W032(name=name, pk=record.pk)]


def _short_secret(record, name):
    """W045: a secret short enough to guess (an empty one is W032's). Never prints it."""
    length = len(record.integration_secret or "")
    if not length or length >= MIN_SECRET_LENGTH:
        return []
    return [W045(name=name, length=length, minimum=MIN_SECRET_LENGTH, pk=record.pk)]


def _record_targets(record, name):
    """W033 and E034 for the target and every additional route, target by target."""
    targets = [("target_base_endpoint", record.target_base_endpoint)]
    targets += [(f"route '{route.route_key}'", route.integration_url) for route in record.additional_routes.all()]
    messages = []
    for label, url in targets:
        messages += _target_messages(f"{name} {label}", url)
    return messages


def _record_token_origin(record, name):
    """W035 for the record's target site."""
    return _token_origin_messages(name, record.target_base_endpoint)


def _undeployed_routes(record, name):
    """W036: a created API whose additional routes are not all deployed."""
    undeployed = [route.route_key for route in record.additional_routes.all() if not route.deployed]
    if not (record.api_created and undeployed):
        return []
    return [W036(name=name, routes=", ".join(undeployed), pk=record.pk)]


#: The per-record checks, in the order their messages are listed.
RECORD_CHECKS = (
    _local_endpoint,
    _not_deployed,
    _legacy_secret_header,
    _no_secret,
    _short_secret,
    _record_targets,
    _record_token_origin,
    _undeployed_routes,
)


def _shared_secret_messages(records):
    """W046: records sharing one integration secret: each API could pass for the others. Never prints it."""
    by_secret: dict[str, list[int]] = {}
    for record in records:
        if record.integration_secret:
            by_secret.setdefault(record.integration_secret, []).append(record.pk)
    messages = []
    for pks in by_secret.values():
        if len(pks) > 1:
            pks = sorted(pks)
            messages.append(W046(pks=", ".join(map(str, pks)), rotate=", ".join(map(str, pks[1:]))))
    return messages


def _is_development_record(record):
    """A record runwsgateway made (its ``local…`` api id) or is serving (a loopback endpoint),
    never created in AWS. A production record not created yet is not one (W031 applies)."""
    return is_local_record(record) and (
        record.api_id.startswith(LOCAL_API_ID_PREFIX) or is_loopback_url(record.management_endpoint_url)
    )


def _not_https(name, url):
    """W033: API Gateway must reach Django over https."""
    return [W033(name=name, url=url)] if urlsplit(url).scheme != "https" else []


def _host_not_allowed(name, url):
    """E034: on a host Django accepts."""
    host = urlsplit(url).hostname
    if host and not validate_host(host, settings.ALLOWED_HOSTS):
        return [E034(name=name, host=host)]
    return []


def _target_messages(name, url):
    """API Gateway must reach Django over https, on a host Django accepts."""
    if not url:
        return []
    return _not_https(name, url) + _host_not_allowed(name, url)


def _token_origin_messages(name, url):
    """W035: the site serving the views also serves the token view, which is CSRF-protected."""
    host = urlsplit(url or "").hostname
    if not host:
        return []
    origin = f"https://{host}"
    trusted = getattr(settings, "CSRF_TRUSTED_ORIGINS", [])
    if any(security._trusted_origin_matches(origin, entry.lower()) for entry in trusted):
        return []
    return [W035(origin=origin, name=name)]
