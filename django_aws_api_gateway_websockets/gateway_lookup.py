"""Looking up the ``ApiGateway`` record an integration request claims to come from.

(Nothing to do with the ``gateway`` package, the local gateway: this is the request path's
process cache of ``ApiGateway`` records.)

``$connect`` has no session row to join, so the record is read by api id; a short
per-process cache keeps that off the database on the hot path (docs/architecture.md, the ``$connect`` path).
Saving or deleting a record clears this process's cache at once; other processes see
the change within ``WEBSOCKETS["gateway_cache_seconds"]``, except a secret rotation, which
they see at the first request carrying the new secret: the view re-reads the record
(``fresh=True``) when the presented secret does not match the cached one.
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from . import protocol
from .conf import get_setting
from .models import ApiGateway, ApiGatewayAdditionalRoute
from .process_cache import ProcessCache

_cache = ProcessCache()


def get_gateway(api_id, *, fresh=False):
    """The record with this api id, or ``None``; ``fresh`` skips (and refreshes) the cache.

    Kept at most ``secret_grace_seconds``: a cached record may still hold a secret rotated
    away, and must not outlive the grace period of that old secret (0: no cache at all).
    """
    if not protocol.is_valid_api_id(api_id):  # e.g. a NUL byte, which PostgreSQL refuses
        return None
    ttl = min(get_setting("gateway_cache_seconds"), get_setting("secret_grace_seconds"))
    return _cache.get(api_id, lambda: ApiGateway.objects.filter(api_id=api_id).first(), ttl, fresh=fresh)


def clear_gateway_cache() -> None:
    _cache.clear()
    _routes.clear()


@receiver(post_save, sender=ApiGateway)
@receiver(post_delete, sender=ApiGateway)
def _forget_gateway(**kwargs):
    clear_gateway_cache()


_routes = ProcessCache()


def additional_route_url(api_id, route_key):
    """The ``integration_url`` of the API's additional route ``route_key`` (``""``: none): where
    the Lambda handler runs a custom route's event, as the HTTP integration would post it."""
    if not protocol.is_valid_api_id(api_id) or not isinstance(route_key, str) or len(route_key) > 64:
        return ""
    ttl = get_setting("gateway_cache_seconds")

    def load():
        url = (
            ApiGatewayAdditionalRoute.objects.filter(api_gateway__api_id=api_id, route_key=route_key)
            .values_list("integration_url", flat=True)
            .first()
        )
        return url or ""

    return _routes.get((api_id, route_key), load, ttl)


@receiver(post_save, sender=ApiGatewayAdditionalRoute)
@receiver(post_delete, sender=ApiGatewayAdditionalRoute)
def _forget_routes(**kwargs):
    _routes.clear()
