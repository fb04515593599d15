"""The database claim that lets exactly one run create a record's API, and finding in AWS
an API that a run created but never recorded.

The claim is one conditional ``UPDATE``: ``provisioning_status`` becomes ``creating`` only
if no run holds the record (status not ``creating``) and nobody recorded an API id since
this run read the record. The database decides the winner; the loser changes no row and
fails with a message naming the record. The claim's time is the record's ``updated_on``,
written by the same ``UPDATE``.

When the run stops before it recorded an API, the claim is given back (``pending``) if no
API can exist (the failure came before ``create_api``, or AWS answered it with an error).
If an API may exist (the connection broke while ``create_api`` was under way), the record
stays ``creating`` with a claim time already stale. A run killed meanwhile leaves
``creating`` too. A later run takes over a claim older than ``CLAIM_STALE_AFTER`` (any
claim with ``force``), and before creating anything looks the API up in AWS by the tag
every API gets (``RECORD_TAG``): what the stopped run created is adopted, never duplicated.
"""

from datetime import UTC, timedelta

from django.utils import timezone

from .base import ProvisioningError, items

CREATING = "creating"
PENDING = "pending"
CLAIM_STALE_AFTER = timedelta(minutes=5)

#: Tag put on every API, naming the record that owns it (pk and creation time: unique per
#: record even across databases that reuse pks, and not a secret).
RECORD_TAG = "django-aws-api-gateway-websockets:record"


def record_tag_value(record):
    created = record.created_on.astimezone(UTC) if record.created_on else None
    return f"{record.pk}/{created:%Y%m%dT%H%M%S.%fZ}" if created else str(record.pk)


def _model(record):
    return type(record)


def held_message(record, claimed_at):
    stale_at = claimed_at + CLAIM_STALE_AFTER
    return (
        f"ApiGateway '{record.api_name}' (pk {record.pk}) is being created by another run "
        f"(provisioning_status 'creating' since {claimed_at:%Y-%m-%d %H:%M:%S %Z}). Wait for that run and "
        f"run the command again. If no run is active (it was killed), run it again after "
        f"{stale_at:%H:%M:%S %Z}: the stale claim is taken over and an API the killed run created is "
        f"found by its tag and adopted; or now with --force-create, or --adopt API_ID to record an API "
        f"you know is this record's (see docs/aws-provisioning.md, 'A stale claim')."
    )


FRESH, TAKEN_OVER = "fresh", "taken over"


def claim(record, *, force=False):
    """Take the right to create the record's API. Returns ``FRESH`` (nobody held it),
    ``TAKEN_OVER`` (a stale claim, or any with ``force``: an API may exist, look it up
    first), or ``None`` when another run recorded an API meanwhile (``record`` is then
    refreshed and has its ``api_id``). Raises ``ProvisioningError`` when another run holds it."""
    now = timezone.now()
    rows = _model(record).objects.filter(pk=record.pk, api_id=record.api_id)
    won = rows.exclude(provisioning_status=CREATING).update(provisioning_status=CREATING, last_error="", updated_on=now)
    outcome = FRESH
    if not won:
        current = _model(record).objects.filter(pk=record.pk).values("api_id", "updated_on").first()
        if current is None:
            raise ProvisioningError(f"ApiGateway pk {record.pk} was deleted.")
        if current["api_id"] != record.api_id:
            record.refresh_from_db()
            return None
        claimed_at = current["updated_on"]
        if force or now - claimed_at >= CLAIM_STALE_AFTER:
            # Take over the stale claim; if two runs try, the one that still sees the
            # claim's old time wins.
            won = rows.filter(provisioning_status=CREATING, updated_on=claimed_at).update(updated_on=now, last_error="")
        if not won:
            raise ProvisioningError(held_message(record, claimed_at))
        outcome = TAKEN_OVER
    record.provisioning_status, record.updated_on, record.last_error = CREATING, now, ""
    return outcome


def release(record, *, api_may_exist=False):
    """End this run's claim when it recorded no API: back to ``pending``, or, when an API
    may exist in AWS, left ``creating`` but stale, so the next run takes it over at once
    and looks the API up before creating one."""
    rows = _model(record).objects.filter(
        pk=record.pk, provisioning_status=CREATING, api_id=record.api_id, updated_on=record.updated_on
    )
    if api_may_exist:
        rows.update(updated_on=record.updated_on - CLAIM_STALE_AFTER)
    elif rows.update(provisioning_status=PENDING):
        record.provisioning_status = PENDING


def _created(api):
    created = api.get("CreatedDate")
    if not created:
        return ""
    return f" (created {created:%Y-%m-%d %H:%M})" if hasattr(created, "strftime") else f" (created {created})"


def find_in_aws(record, client, *, force_create=False):
    """The API a run created for this record, found by ``RECORD_TAG``; ``None`` if there is
    none and creating one is safe. Refuses when the state is ambiguous: several tagged
    APIs, or a WEBSOCKET API with the record's name and no tag (made by the 4.1.0 release,
    which tagged nothing, or by hand) unless ``force_create``."""
    apis = items("get_apis", client.get_apis)
    value = record_tag_value(record)
    tagged = [api for api in apis if (api.get("Tags") or {}).get(RECORD_TAG) == value]
    if len(tagged) > 1:
        ids = ", ".join(api["ApiId"] for api in tagged)
        raise ProvisioningError(
            f"several APIs in AWS carry the tag of ApiGateway '{record.api_name}' (pk {record.pk}): {ids}. "
            f"Choose one with --adopt API_ID and delete the others."
        )
    if tagged:
        return tagged[0]
    same_name = [
        api
        for api in apis
        if api.get("Name") == record.api_name
        and api.get("ProtocolType") == "WEBSOCKET"
        and RECORD_TAG not in (api.get("Tags") or {})
    ]
    if same_name and not force_create:
        found = ", ".join(api["ApiId"] + _created(api) for api in same_name)
        raise ProvisioningError(
            f"ApiGateway '{record.api_name}' (pk {record.pk}) has no API id, and AWS has a WEBSOCKET API of that "
            f"name without this package's record tag: {found}. If it is this record's API (created by the "
            f"4.1.0 release, or by a run that was killed), run the command again with --adopt API_ID; to create "
            f"a new API anyway, with --force-create."
        )
    return None
