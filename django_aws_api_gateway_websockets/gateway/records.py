"""Which ``ApiGateway`` record ``runwsgateway`` may write to (needs Django, not aiohttp).

A deployed site's record must never carry development state: ``runwsgateway`` writes only to
a *local* record, one never created in AWS. Asked to play a record that exists in AWS, it plays
a companion local record instead: ``<name>-local``, created once (copying what the gateway
needs) and reused; the AWS record is only read.
"""

import uuid
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction

from .config import is_loopback_host as is_loopback_host  # re-exported: runwsgateway imports it from here

if TYPE_CHECKING:
    from ..models import ApiGateway

COMPANION_SUFFIX = "-local"
LOCAL_API_ID_PREFIX = "local"  # AWS api ids are 10 letters and digits: never 15 starting so


def is_loopback_url(url: str) -> bool:
    try:
        return is_loopback_host(urlsplit(url).hostname)
    except ValueError:
        return False


def is_local_record(record: "ApiGateway") -> bool:
    """Never created in AWS, and not pointed at anything but this machine."""
    return (
        not record.api_created
        and not record.deployment_id
        and not record.custom_domain_created
        and not record.api_endpoint
        and (not record.management_endpoint_url or is_loopback_url(record.management_endpoint_url))
    )


def is_served_locally(record: "ApiGateway") -> bool:
    """A local record a local gateway serves (or served and was killed before restoring it)."""
    return is_local_record(record) and is_loopback_url(record.management_endpoint_url)


def companion_name(record: "ApiGateway") -> str:
    return record.api_name[: 255 - len(COMPANION_SUFFIX)] + COMPANION_SUFFIX


def new_local_api_id() -> str:
    return f"{LOCAL_API_ID_PREFIX}{uuid.uuid4().hex[:10]}"


def local_region() -> str:
    """AWS_GATEWAY_REGION_NAME (or the boto3 default); blank, which means the same, if none."""
    from ..aws import get_region_name

    try:
        return get_region_name()
    except ImproperlyConfigured:
        return ""


def find_companion(record: "ApiGateway") -> "ApiGateway | None":
    """The local companion of an AWS record, or ``None``."""
    from ..models import ApiGateway

    companion = ApiGateway.objects.filter(api_name=companion_name(record)).first()
    return companion if companion is not None and is_local_record(companion) else None


def get_or_create_companion(record: "ApiGateway") -> "tuple[ApiGateway, bool]":
    """``(companion, created)``: the local record that stands in for the AWS ``record``."""
    from ..models import ApiGateway

    name = companion_name(record)
    existing = ApiGateway.objects.filter(api_name=name).first()
    if existing is None:
        try:
            with transaction.atomic():
                companion = ApiGateway.objects.create(
                    api_name=name,
                    api_description=f"Local stand-in for '{record.api_name}', served by runwsgateway"[:255],
                    api_id=new_local_api_id(),
                    stage_name=record.stage_name,
                    target_base_endpoint=record.target_base_endpoint,
                    route_selection_expression=record.route_selection_expression,
                    default_route_two_way=record.default_route_two_way,
                    default_channel_name=record.default_channel_name,
                    region=local_region(),
                )  # its own integration_secret: the field's default generates one
            return companion, True
        except IntegrityError:  # another runwsgateway created it just now
            existing = ApiGateway.objects.get(api_name=name)
    if not is_local_record(existing):
        raise ValueError(
            f"ApiGateway '{name}' (pk {existing.pk}) exists in AWS: it cannot be the local companion "
            f"of '{record.api_name}'. Rename it, or choose a local record with --api."
        )
    return existing, False


def served_locally(record: "ApiGateway | None") -> "ApiGateway | None":
    """The record browsers should use in development: ``record``, or the companion a running
    local gateway serves in its place."""
    if record is None or is_local_record(record):
        return record
    companion = find_companion(record)
    return companion if companion is not None and is_served_locally(companion) else record
