"""``check --deploy``: what the database says (records, scheduled cleanup, stale sessions)."""

from datetime import timedelta

from django.core.checks import register
from django.db import DatabaseError, router, transaction
from django.utils import timezone

from .. import protocol
from .lambda_integration import lambda_record_messages
from .messages import NAMESPACE, Template
from .records import _record_messages

CLEANUP_COMMANDS = ("clear_websocket_sessions", "cleanup_websocket_tokens")
CLEANUP_MAX_AGE = timedelta(days=1)

I039 = Template("I039", "Database checks skipped on '{alias}': {exc}", hint="Run migrate, then check --deploy again.")
W040 = Template(
    "W040",
    "{missing} did not run in the last 24 hours.",
    hint="Schedule clear_websocket_sessions --stale --older-than 1 and cleanup_websocket_tokens "
    "(docs/production.md, Scheduled cleanup).",
)
W041 = Template(
    "W041",
    "{stale} session(s) are still marked connected after API Gateway's 2-hour cap (missed $disconnect).",
    hint="Broadcasts try them in vain: run clear_websocket_sessions --stale, and schedule it.",
)


# Not tagged Tags.database: Django 6 skips such checks unless --database is given, and these
# are what `check --deploy` is for. Deploy checks never run at runserver/migrate/test start.
@register(NAMESPACE, deploy=True)
def check_database(app_configs, databases=None, **kwargs):
    """Records, secrets, endpoints, cleanup and stale sessions, per database alias.

    Never fails the command: before ``migrate`` (or without a database) it says it skipped.
    """
    from ..models import ApiGateway

    aliases = databases or [router.db_for_read(ApiGateway)]
    messages = []
    for alias in aliases:
        if not router.allow_migrate_model(alias, ApiGateway):
            continue
        try:
            # A savepoint: a missing table must not break an enclosing transaction (PostgreSQL).
            with transaction.atomic(using=alias):
                messages += _record_messages(alias)
                messages += _cleanup_messages(alias)
                messages += _stale_messages(alias)
                messages += lambda_record_messages(alias)
        except DatabaseError as exc:
            messages.append(I039(alias=alias, exc=exc))
    return messages


def _cleanup_messages(alias):
    """W040: a cleanup command that has not run in the last day."""
    from ..models import CleanupRun

    since = timezone.now() - CLEANUP_MAX_AGE
    recent = set(
        CleanupRun.objects.using(alias)
        .filter(ran_at__gte=since, command__in=CLEANUP_COMMANDS)
        .values_list("command", flat=True)
    )
    missing = [command for command in CLEANUP_COMMANDS if command not in recent]
    if not missing:
        return []
    return [W040(missing=" and ".join(missing))]


def _stale_messages(alias):
    """W041: sessions still connected past API Gateway's cap."""
    from ..models import WebSocketSession

    cutoff = timezone.now() - timedelta(seconds=protocol.MAX_CONNECTION_SECONDS)
    stale = WebSocketSession.objects.using(alias).connected().filter(created_on__lt=cutoff).count()
    if not stale:
        return []
    return [W041(stale=stale)]
