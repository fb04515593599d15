"""Looking up the ``ApiGateway`` record an integration request claims to come from.

``$connect`` has no session row to join, so the record is read by api id; a short
per-process cache keeps that off the database on the hot path (SPEC §7 budgets).
Saving or deleting a record clears this process's cache at once; other processes see
the change within ``WEBSOCKETS["gateway_cache_seconds"]``, except a secret rotation, which
they see at the first request carrying the new secret: the view re-reads the record
(``fresh=True``) when the presented secret does not match the cached one.
"""

import threading
import time

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from . import protocol
from .conf import get_setting
from .models import ApiGateway

_cache = {}
_lock = threading.Lock()


def get_gateway(api_id, *, fresh=False):
    """The record with this api id, or ``None``; ``fresh`` skips (and refreshes) the cache."""
    if not protocol.is_valid_api_id(api_id):  # e.g. a NUL byte, which PostgreSQL refuses
        return None
    ttl = get_setting("gateway_cache_seconds")
    now = time.monotonic()
    hit = None if fresh else _cache.get(api_id)
    if hit and hit[0] > now:
        return hit[1]
    gateway = ApiGateway.objects.filter(api_id=api_id).first()
    if ttl and gateway is not None:
        with _lock:
            _cache[api_id] = (now + ttl, gateway)
    return gateway


def clear_gateway_cache():
    with _lock:
        _cache.clear()


@receiver(post_save, sender=ApiGateway)
@receiver(post_delete, sender=ApiGateway)
def _forget_gateway(**kwargs):
    clear_gateway_cache()
