"""WebSocket operations: per-minute counters fed by the package's signals, and a staff-only admin
page with live charts (connections, events per minute, send results, refused connects).

Opt in by adding ``"django_aws_api_gateway_websockets.operations"`` to ``INSTALLED_APPS`` and
running ``migrate``; see docs/monitoring.md.
"""
