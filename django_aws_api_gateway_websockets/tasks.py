"""Very large broadcasts on Celery: chunks of sessions, sent by whichever workers take them.

``broadcast_in_chunks(queryset, data)`` encodes the message once (the 128 KB check happens in
the caller, not in every worker), then enqueues one ``send_to_session_chunk`` task per
``chunk_size`` connected rows. Each worker sends its chunk with the fan-out engine and its own
connection pool per endpoint (kept across tasks; fork-safe under Celery's prefork pool), so
several processes and machines share a broadcast; their calls together keep under the account's
limit when ``send_rate_processes`` or ``send_rate_limit_cache`` is set (docs/sending.md). Celery's autodiscovery
imports this module when celery is installed (``pip install "django-aws-api-gateway-websockets[celery]"``).
"""

from typing import Any

try:
    from celery import shared_task
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'django_aws_api_gateway_websockets.tasks needs Celery: pip install "django-aws-api-gateway-websockets[celery]"'
    ) from exc

from .models import WebSocketSession
from .sending import encode_message, send_to_sessions

DEFAULT_CHUNK_SIZE = 5_000  # about a second of sending for one worker process


@shared_task(name="django_aws_api_gateway_websockets.send_to_session_chunk")
def send_to_session_chunk(pks, message):
    """Send ``message`` (already encoded text) to the sessions among ``pks`` still connected.

    Returns ``{"delivered": n, "gone": n, "failed": {connection_id: error}, "throttled_retries": n}``.
    Within one worker process, the chunks share one connection pool per endpoint and the
    process's share of the call rate (``send_rate_processes`` / ``send_rate_limit_cache``).
    """
    result = send_to_sessions(WebSocketSession.objects.filter(pk__in=pks).connected(), message)
    return {
        "delivered": len(result.delivered),
        "gone": len(result.gone),
        "failed": result.failed,
        "throttled_retries": result.throttled_retries,
    }


def broadcast_in_chunks(queryset, data, chunk_size=DEFAULT_CHUNK_SIZE, **apply_options):
    """Enqueue ``data`` for every connected session of ``queryset``, ``chunk_size`` rows a task.

    ``apply_options`` go to ``apply_async`` (``queue=``, ``priority=``, ...). Returns the tasks'
    ``AsyncResult`` objects. Raises ``MessageTooLarge`` (nothing enqueued) for a message over
    ``max_message_bytes``, ``ValueError`` for a ``chunk_size`` below 1 or bytes that are not UTF-8 text.
    """
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, not {chunk_size!r}")
    try:
        # Encoded here once, with DjangoJSONEncoder; workers post the text unchanged.
        message = encode_message(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("broadcast_in_chunks queues text: bytes must be UTF-8.") from exc
    connected = queryset.connected().order_by("pk").values_list("pk", flat=True)
    results: list[Any] = []
    last = None
    while True:
        # Keyset pages: one bounded query per chunk, no cursor held open while enqueuing.
        page = connected if last is None else connected.filter(pk__gt=last)
        chunk = list(page[:chunk_size])
        if not chunk:
            return results
        results.append(send_to_session_chunk.apply_async((chunk, message), **apply_options))
        last = chunk[-1]
