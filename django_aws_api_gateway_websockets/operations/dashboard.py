"""The numbers behind the operations page: the last hour, minute by minute (a few queries)."""

from collections import defaultdict
from datetime import timedelta

from django.db.models import Count, Sum
from django.utils import timezone

from ..models import ApiGateway, Subscription, WebSocketSession
from .counters import this_minute
from .models import MinuteCounter

SEND_RESULTS = ("send_delivered", "send_gone", "send_failed", "send_throttled")
MAX_CHANNEL_SERIES = 8  # the busiest gateway/channel pairs get a line; the rest are summed


def _gateway_names():
    return {pk: name or api_id for pk, name, api_id in ApiGateway.objects.values_list("pk", "api_name", "api_id")}


def _label_name(label, names):
    gateway, _, channel = label.partition("|")
    name = names.get(int(gateway), f"gateway {gateway}") if gateway.isdigit() else "no gateway"
    return f"{name} / {channel or '(default)'}"


def snapshot(minutes=60, now=None):
    now = now or timezone.now()
    end = this_minute(now)
    start = end - timedelta(minutes=minutes - 1)
    axis = [start + timedelta(minutes=i) for i in range(minutes)]
    index = {minute: i for i, minute in enumerate(axis)}
    rows = (
        MinuteCounter.objects.filter(minute__gte=start, minute__lte=end)
        .values("minute", "metric", "label")
        .annotate(total=Sum("count"))
    )
    per_metric: defaultdict[str, list[int]] = defaultdict(lambda: [0] * minutes)  # metric -> counts per minute
    per_label: defaultdict[str, defaultdict[str, list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0] * minutes)
    )  # metric -> label -> counts
    for row in rows:
        i = index.get(row["minute"])
        if i is None:
            continue
        per_metric[row["metric"]][i] += row["total"]
        per_label[row["metric"]][row["label"]][i] += row["total"]

    names = _gateway_names()
    # Open connections now, per gateway and channel: the WebSocketSession rows themselves.
    # Per channel from the subscriptions (a connection counts in each channel it holds), and the
    # connections holding none under the empty channel.
    open_now = {
        f"{row['connection__api_gateway_id'] or '-'}|{row['channel']}": row["n"]
        for row in Subscription.objects.filter(connection__connected=True)
        .values("connection__api_gateway_id", "channel")
        .annotate(n=Count("pk"))
        .order_by()
    }
    for gateway_id, n in (
        WebSocketSession.objects.filter(connected=True, subscriptions__isnull=True)
        .values("api_gateway_id")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("api_gateway_id", "n")
    ):
        open_now[f"{gateway_id or '-'}|"] = n
    # ... and over the hour, walked back from now: before minute i there were
    # open_now - arrivals(i..end) + departures(i..end), where arrivals are connects and
    # change_channel moves in, departures disconnects and moves out.
    arriving, leaving = ("connect", "move_in"), ("disconnect", "move_out")
    labels = set(open_now).union(*(per_label[metric] for metric in arriving + leaving))
    open_series = {}
    for label in labels:
        value, series = open_now.get(label, 0), [0] * minutes
        for i in range(minutes - 1, -1, -1):
            series[i] = max(0, value)
            value -= sum(per_label[metric][label][i] for metric in arriving)
            value += sum(per_label[metric][label][i] for metric in leaving)
        open_series[label] = series
    ranked = sorted(open_series, key=lambda label: (-open_now.get(label, 0), -max(open_series[label]), label))
    shown = ranked[:MAX_CHANNEL_SERIES]
    open_lines = [{"label": _label_name(label, names), "data": open_series[label]} for label in shown]
    rest = ranked[MAX_CHANNEL_SERIES:]
    if rest:
        open_lines.append(
            {
                "label": f"{len(rest)} more",
                "data": [sum(open_series[label][i] for label in rest) for i in range(minutes)],
            }
        )
    return {
        "minutes": [int(minute.timestamp()) for minute in axis],
        "generated_at": now.isoformat(),
        "open_now": sorted(
            ({"gateway_channel": _label_name(label, names), "open": n} for label, n in open_now.items()),
            key=lambda item: (-item["open"], item["gateway_channel"]),
        ),
        "open_total": WebSocketSession.objects.filter(connected=True).count(),  # connections, each once
        "open": open_lines,
        "events": {metric: per_metric[metric] for metric in ("connect", "disconnect", "message")},
        "sends": {metric.removeprefix("send_"): per_metric[metric] for metric in SEND_RESULTS},
        "rejected": dict(sorted(per_label["rejected"].items())),
        "totals": {
            metric: sum(per_metric[metric])
            for metric in ("connect", "disconnect", "message", "rejected", *SEND_RESULTS)
        },
    }
