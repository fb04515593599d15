"""Connect rate limiting per source IP and per user (SPEC §6).

Counting uses the ``ConnectionRateLimit`` table, which every Django process shares through
the database, and which is also the audit trail shown in the admin. One aggregate query
counts both keys; the attempt is recorded once, with its outcome, when the connect ends.
"""

from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone

from .conf import get_setting
from .models import ConnectionRateLimit


def check_connect_rate(ip_address, user=None, max_attempts=None, window_minutes=None):
    """``(allowed, attempts)`` for this IP (and user, when authenticated) in the window."""
    max_attempts = max_attempts or get_setting("rate_limit_max_attempts")
    window = window_minutes or get_setting("rate_limit_window_minutes")
    since = timezone.now() - timedelta(minutes=window)
    user_id = user.pk if user is not None and user.is_authenticated else None
    by_ip = Q(ip_address=ip_address)
    by_user = Q(user_id=user_id) if user_id else Q(pk__in=[])
    counts = ConnectionRateLimit.objects.filter(by_ip | by_user, attempt_time__gte=since).aggregate(
        ip=Count("pk", filter=by_ip), user=Count("pk", filter=by_user)
    )
    attempts = max(counts["ip"], counts["user"])
    return attempts < max_attempts, attempts


def record_connect_attempt(ip_address, user=None, successful=False, reason=""):
    if user is not None and not user.is_authenticated:
        user = None
    return ConnectionRateLimit.objects.create(
        ip_address=ip_address, user=user, successful=successful, reason=reason
    )


def cleanup_attempts(days=7):
    """Delete attempts older than ``days``; returns the count."""
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = ConnectionRateLimit.objects.filter(attempt_time__lt=cutoff).delete()
    return deleted
