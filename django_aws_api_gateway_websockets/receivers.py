"""The package's own signal receivers (connected in ``AppConfig.ready``)."""

import logging
from datetime import timedelta

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from .log_context import log_context
from .models import ApiGateway, CleanupRun, WebSocketSession
from .signals import cleanup_run

logger = logging.getLogger("django_aws_api_gateway_websockets.cleanup")

# Enough history for websocket_stats and the W040 check; a 5-minute schedule adds ~9,000 rows a month.
CLEANUP_HISTORY = timedelta(days=30)


@receiver(cleanup_run)
def record_cleanup(sender, command, removed, **kwargs):
    """Persist the run (``check --deploy`` and ``websocket_stats`` read it), log it, prune old runs."""
    run = CleanupRun.objects.create(command=command, removed=removed)
    CleanupRun.objects.filter(ran_at__lt=run.ran_at - CLEANUP_HISTORY).delete()
    logger.info(
        "Cleanup %s removed %s",
        command,
        removed,
        extra=log_context(command=command, removed=removed),
    )


@receiver(pre_delete, sender=ApiGateway)
def disconnect_sessions_of_deleted_gateway(sender, instance, **kwargs):
    """Without its record no message can reach or leave these connections: mark them closed
    (the foreign key is then set to NULL)."""
    WebSocketSession.objects.filter(api_gateway=instance, connected=True).update(connected=False)
