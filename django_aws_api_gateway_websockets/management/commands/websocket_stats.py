import json
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count, Q
from django.utils import timezone

from ... import protocol
from ...checks import CLEANUP_COMMANDS
from ...models import ApiGateway, CleanupRun, ConnectionRateLimit, Subscription, WebSocketSession, WebSocketToken

NO_GATEWAY = "(no gateway)"


def collect_stats(top_channels=20):
    """What operators watch: connections per gateway and channel, stale rows, table sizes, cleanup.

    ``top_channels`` limits the channels listed per gateway (the busiest first);
    ``channels_total`` still counts them all.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=protocol.MAX_CONNECTION_SECONDS)
    gateways: dict[int | None, dict[str, Any]] = {
        pk: {"pk": pk, "name": name, "connected": 0, "stale": 0, "channels_total": 0, "channels": {}}
        for pk, name in ApiGateway.objects.order_by("api_name").values_list("pk", "api_name")
    }

    def gateway_entry(pk):
        return gateways.get(pk) or gateways.setdefault(
            pk, {"pk": pk, "name": NO_GATEWAY, "connected": 0, "stale": 0, "channels_total": 0, "channels": {}}
        )

    # Connections per gateway (each once), then per channel from the subscriptions (a connection
    # counts in every channel it holds; "" is the connections holding none).
    for row in (
        WebSocketSession.objects.connected()
        .values("api_gateway")
        .annotate(n=Count("pk"), stale=Count("pk", filter=Q(created_on__lt=stale_before)))
        .order_by()
    ):
        gateway = gateway_entry(row["api_gateway"])
        gateway["connected"] += row["n"]
        gateway["stale"] += row["stale"]
    per_channel = [
        (row["connection__api_gateway"], row["channel"], row["n"])
        for row in Subscription.objects.filter(connection__connected=True)
        .values("connection__api_gateway", "channel")
        .annotate(n=Count("pk"))
        .order_by()
    ]
    per_channel += [
        (row["api_gateway"], "", row["n"])
        for row in WebSocketSession.objects.connected()
        .filter(subscriptions__isnull=True)
        .values("api_gateway")
        .annotate(n=Count("pk"))
        .order_by()
    ]
    for pk, channel, n in sorted(per_channel, key=lambda item: (-item[2], item[1])):
        gateway = gateway_entry(pk)
        gateway["channels_total"] += 1
        if len(gateway["channels"]) < top_channels:
            gateway["channels"][channel] = n
    return {
        "at": now.isoformat(),
        "connected": sum(g["connected"] for g in gateways.values()),
        "stale": sum(g["stale"] for g in gateways.values()),
        "gateways": list(gateways.values()),
        "disconnected_rows": WebSocketSession.objects.filter(connected=False).count(),
        "tokens": WebSocketToken.objects.count(),
        "connection_attempts": ConnectionRateLimit.objects.count(),
        "last_cleanup": {command: _last_run(command) for command in CLEANUP_COMMANDS},
    }


def _last_run(command):
    run = CleanupRun.objects.filter(command=command).order_by("-ran_at").first()
    return {"at": run.ran_at.isoformat(), "removed": run.removed} if run else None


class Command(BaseCommand):
    help = (
        "Connected WebSocket sessions per gateway and channel, stale sessions (still marked connected "
        "after API Gateway's 2-hour cap), token and connection-attempt table sizes, the last cleanups."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Machine-readable output.")
        parser.add_argument(
            "--channels", type=int, default=20, metavar="N", help="Channels listed per gateway, busiest first (20)."
        )

    def handle(self, *args, channels, **options):
        if channels < 0:
            raise CommandError("--channels must be zero or more.")
        stats = collect_stats(top_channels=channels)
        if options["json"]:
            self.stdout.write(_dumps(stats))
            return
        self.stdout.write(f"Connected sessions: {stats['connected']}")
        for gateway in stats["gateways"]:
            label = gateway["name"] if gateway["pk"] is None else f"{gateway['name']} (pk {gateway['pk']})"
            self.stdout.write(
                f"  {label}: {gateway['connected']} connected, {gateway['stale']} stale, "
                f"{gateway['channels_total']} channel(s)"
            )
            for channel, count in gateway["channels"].items():
                self.stdout.write(f"    {channel or '(no channel)'}: {count}")
            hidden = gateway["channels_total"] - len(gateway["channels"])
            if hidden:
                self.stdout.write(f"    ... {hidden} more channel(s)")
        line = f"Stale sessions (connected for more than 2 hours, API Gateway's cap): {stats['stale']}"
        self.stdout.write(
            self.style.WARNING(f"{line} - run clear_websocket_sessions --stale") if stats["stale"] else line
        )
        self.stdout.write(f"Disconnected rows kept: {stats['disconnected_rows']}")
        self.stdout.write(f"Tokens stored: {stats['tokens']}")
        self.stdout.write(f"Connection attempts stored: {stats['connection_attempts']}")
        for command, run in stats["last_cleanup"].items():
            text = f"Last {command}: " + (f"{run['at']}, removed {_dumps(run['removed'], None)}" if run else "never")
            self.stdout.write(text if run else self.style.WARNING(text))


def _dumps(value, indent=2):
    return json.dumps(value, indent=indent, sort_keys=indent is None)
