"""`make bench` (history part): what channel history costs a broadcast, and what resume delivers.

In one run, on the same rows:

* ``broadcast_history_throughput_ratio``: broadcast throughput with ``send_to_channel`` (history
  on: the counter upsert and one INSERT per broadcast) divided by the same with
  ``WebSocketSession.objects.in_channel(...).send_message`` (history off), on the real stack:
  the default send backend posting to ``runwsgateway`` at 10 ms per call, which pushes every
  frame to 2,000 sockets held by bench/clients.py; alternating rounds so that both see the same
  machine state; each delivery checked (skip: BENCH_HISTORY_SKIP_GATEWAY);
* ``broadcast_history_throughput_ratio_in_memory_backend``: the same to N connection rows with
  the in-memory send backend: no network time hides the database write, so this is the worst
  case (the commit against a fan-out that costs nothing);
* SQL per broadcast, with 10 and with N connections (history must add a constant, not a
  query per connection);
* resume: K clients following a channel while a sender broadcasts M messages; before each
  broadcast every client's connection is dropped with probability P (410 for what was in
  flight, a new connection id, ``resume`` from the last sequence number it delivered); the
  fraction of clients that end with every message in order exactly once.

Writes bench/results/history-latest.json (the ratios,
``resume_delivered_exactly_once_fraction``, the query counts, the machine's load average before
and after). ``--pg`` runs on PostgreSQL (bench/settings_pg.py), else a SQLite file with Django's
default settings for it: SQLite's rollback journal (``journal_mode=delete``, ``synchronous=full``),
where every commit waits for the disk. ``--sqlite-wal`` runs with the settings docs/history.md
recommends instead (``"init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL"``;
written to history-latest-wal.json). The results name the journal mode measured.

Smaller while iterating: ``BENCH_HISTORY_N`` (connections, 1,000) and
``BENCH_HISTORY_BROADCASTS`` (per side, 200).
"""

import gc
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = "--pg" in sys.argv
WAL = "--sqlite-wal" in sys.argv and not PG
if PG:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings_pg"
    os.environ.setdefault("BENCH_PG_NAME", "ws_bench_history")
else:
    os.environ["BENCH_DB"] = str(Path(tempfile.mkdtemp(prefix="ws-bench-history-")) / "bench.sqlite3")
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"

import django  # noqa: E402

django.setup()

if WAL:
    from django.db import connections as _connections

    _connections["default"].settings_dict.setdefault("OPTIONS", {})["init_command"] = (
        "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL"
    )

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from django_aws_api_gateway_websockets import history  # noqa: E402
from django_aws_api_gateway_websockets.models import ApiGateway, ChannelMessage, WebSocketSession  # noqa: E402
from django_aws_api_gateway_websockets.testing import ManagementAPICapture  # noqa: E402

N = int(os.environ.get("BENCH_HISTORY_N", 1_000))  # connections in the channel
BROADCASTS = int(os.environ.get("BENCH_HISTORY_BROADCASTS", 200))  # per side
ROUNDS = 5
RESUME_CLIENTS, RESUME_MESSAGES, DROP_P = 50, 300, 0.05
GATEWAY_SOCKETS = int(os.environ.get("BENCH_HISTORY_GATEWAY_SOCKETS", 2_000))
GATEWAY_ROUNDS = 10  # broadcasts per side through the local gateway


def _prepare_database():
    if PG:
        import psycopg
        from django.db import connections

        settings = connections["default"].settings_dict
        with psycopg.connect(
            host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname="postgres", autocommit=True
        ) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{settings["NAME"]}"')
            admin.execute(f'CREATE DATABASE "{settings["NAME"]}"')
    call_command("migrate", verbosity=0)


def _sessions(gateway, channel, n):
    WebSocketSession.objects.bulk_create(
        [
            WebSocketSession(connection_id=f"{channel}-{i:06d}=", channel_name=channel, api_gateway=gateway)
            for i in range(n)
        ],
        batch_size=1000,
    )


def _sqlite_modes():
    if connection.vendor != "sqlite":
        return {}
    with connection.cursor() as cursor:
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        synchronous = cursor.execute("PRAGMA synchronous").fetchone()[0]
    return {
        "sqlite_journal_mode": mode,
        "sqlite_synchronous": {0: "off", 1: "normal", 2: "full", 3: "extra"}[synchronous],
    }


def throughput(gateway):
    _sessions(gateway, "bench", N)
    # The setup's objects (Django, the rows) are frozen: a full collection that scans them (tens
    # of ms) lands on one side or the other at random and would decide the ratio on its own.
    gc.collect()
    gc.freeze()
    with ManagementAPICapture() as capture:
        history.send_to_channel("bench", {"warm": True})
        WebSocketSession.objects.in_channel("bench").send_message({"warm": True})
        on = off = 0.0
        per_round = BROADCASTS // ROUNDS

        def timed(send):
            elapsed = 0.0
            for i in range(per_round):
                start = time.perf_counter()
                send(i)
                elapsed += time.perf_counter() - start
                capture.clear()  # the test double's memory, not the package's work
            return elapsed

        def without_history(i):
            WebSocketSession.objects.in_channel("bench").send_message({"type": "tick", "i": i})

        def with_history(i):
            history.send_to_channel("bench", {"type": "tick", "i": i})

        for round_ in range(ROUNDS):  # alternating which side goes first
            if round_ % 2:
                on += timed(with_history)
                off += timed(without_history)
            else:
                off += timed(without_history)
                on += timed(with_history)
    sent = (BROADCASTS // ROUNDS) * ROUNDS
    return {
        "connections": N,
        "broadcasts_each_side": sent,
        "history_off_broadcasts_per_s": round(sent / off, 1),
        "history_on_broadcasts_per_s": round(sent / on, 1),
        "history_off_deliveries_per_s": round(sent * N / off),
        "history_on_deliveries_per_s": round(sent * N / on),
        "broadcast_history_throughput_ratio_in_memory_backend": round(off / on, 3),
    }


def queries_per_broadcast(gateway):
    _sessions(gateway, "small", 10)
    counts = {}
    with ManagementAPICapture():
        for channel, n in (("small", 10), ("bench", N)):
            for name, send in (
                ("off", lambda c=channel: WebSocketSession.objects.in_channel(c).send_message({"q": 1})),
                ("on", lambda c=channel: history.send_to_channel(c, {"q": 1})),
            ):
                with CaptureQueriesContext(connection) as ctx:
                    send()
                sql = [q["sql"].split()[0].upper() for q in ctx.captured_queries]
                counts[f"history_{name}_{n}_connections"] = {"queries": len(sql), "inserts": sql.count("INSERT")}
    counts["extra_queries_per_broadcast"] = (
        counts[f"history_on_{N}_connections"]["queries"] - counts[f"history_off_{N}_connections"]["queries"]
    )
    counts["extra_queries_independent_of_audience"] = (
        counts["history_on_10_connections"]["queries"] - counts["history_off_10_connections"]["queries"]
        == counts["extra_queries_per_broadcast"]
    )
    return counts


class Follower:
    """A client as websocket-client.js: order and de-duplicate by seq, resume after a drop."""

    def __init__(self, gateway, index):
        self.gateway, self.index, self.generation = gateway, index, 0
        self.last, self.pending, self.delivered = None, {}, []
        self.session = self._connect()

    def _connect(self):
        self.generation += 1
        return WebSocketSession.objects.create(
            connection_id=f"follower-{self.index}-{self.generation}=", channel_name="resume", api_gateway=self.gateway
        )

    def take(self, frames):
        for frame in frames:
            if frame.get("type") == "replay":
                for message in frame["messages"]:
                    self._sequenced(message)
            elif frame.get("type") == "resumed":
                if self.last is None:
                    self.last = frame["streams"]["resume"]
            elif "seq" in frame:
                self._sequenced(frame)

    def _sequenced(self, message):
        if self.last is None:
            self.last = message["seq"] - 1
        if message["seq"] <= self.last or message["seq"] in self.pending:
            return
        self.pending[message["seq"]] = message
        while self.last + 1 in self.pending:
            self.last += 1
            self.delivered.append(self.pending.pop(self.last)["n"])

    def drop_and_resume(self, capture):
        capture.mark_gone(self.session.connection_id)
        self.session = self._connect()
        history.resume_session(self.session, "resume", self.last, None, channel_position=True)


def resume_fraction(gateway):
    rng = random.Random(16)
    with ManagementAPICapture() as capture:
        followers = [Follower(gateway, i) for i in range(RESUME_CLIENTS)]
        for f in followers:
            history.resume_session(f.session, "resume", None, None, channel_position=True)
        drops = 0
        for n in range(RESUME_MESSAGES):
            for f in followers:
                if rng.random() < DROP_P:
                    f.drop_and_resume(capture)
                    drops += 1
            history.send_to_channel("resume", {"type": "tick", "n": n})
            for f in followers:
                f.take(capture.messages.pop(f.session.connection_id, []))
            if rng.random() < DROP_P:  # a duplicate in flight: one client gets the last broadcast twice
                f = rng.choice(followers)
                f.take([json.loads(ChannelMessage.objects.filter(stream="resume").latest("seq").payload)])
        exact = sum(f.delivered == list(range(RESUME_MESSAGES)) for f in followers)
    return {
        "resume_clients": RESUME_CLIENTS,
        "resume_messages": RESUME_MESSAGES,
        "resume_drops": drops,
        "resume_delivered_exactly_once_fraction": exact / RESUME_CLIENTS,
    }


def through_the_local_gateway():
    """The same comparison on the real stack: the default send backend posting to ``runwsgateway``
    (10 ms per ``@connections`` call, as bench/run.py) which pushes the frames to
    ``GATEWAY_SOCKETS`` sockets held by bench/clients.py; each broadcast counted as done when the
    last call returned, then checked: every socket got its frame."""
    from bench.stack import open_sockets, start_clients, start_gateway

    record = ApiGateway.objects.create(api_name="bench-history-gw", api_id="benchhgw01", region="us-east-1")
    clients, backend = start_clients()
    gateway = None
    try:
        gateway = start_gateway(record, backend, "--management-latency-ms", "10")
        n = len(open_sockets(clients, record, GATEWAY_SOCKETS, channel="gw"))

        def timed(send, i):
            clients.ask("sockets 0")  # a clean count per broadcast
            start = time.perf_counter()
            result = send(i)
            elapsed = time.perf_counter() - start
            received = int(clients.ask(f"expect {n} 30")[1])
            assert len(result.delivered) == n and received == n, (len(result.delivered), received)
            return elapsed

        def without_history(i):
            return WebSocketSession.objects.in_channel("gw").send_message({"type": "tick", "i": i})

        def with_history(i):
            return history.send_to_channel("gw", {"type": "tick", "i": i}).result

        timed(without_history, -1)  # warm: the pools, the caches, the sequence row
        timed(with_history, -1)
        on = off = 0.0
        for round_ in range(GATEWAY_ROUNDS):  # alternating which side goes first
            first, second = (with_history, without_history) if round_ % 2 else (without_history, with_history)
            for send in (first, second):
                elapsed = timed(send, round_)
                if send is with_history:
                    on += elapsed
                else:
                    off += elapsed
    finally:
        if gateway is not None:
            gateway.stop()
        clients.ask("close")
        clients.stop(interrupt=False)
    return {
        "local_gateway_sockets": n,
        "local_gateway_broadcasts_each_side": GATEWAY_ROUNDS,
        "local_gateway_history_off_seconds_per_broadcast": round(off / GATEWAY_ROUNDS, 4),
        "local_gateway_history_on_seconds_per_broadcast": round(on / GATEWAY_ROUNDS, 4),
        "broadcast_history_throughput_ratio": round(off / on, 3),
    }


def main():
    _prepare_database()
    gateway = ApiGateway.objects.create(
        api_name="bench-history",
        api_id="benchhist1",
        region="us-east-1",
        management_endpoint_url="http://127.0.0.1:9/local",
    )
    result = {"database": connection.vendor, "history_max_messages": history.get_setting("history_max_messages")}
    result.update(_sqlite_modes())
    result["load_average_before"] = os.getloadavg()[0]
    result.update(throughput(gateway))
    result["queries"] = queries_per_broadcast(gateway)
    result.update(resume_fraction(gateway))
    if not os.environ.get("BENCH_HISTORY_SKIP_GATEWAY"):
        result.update(through_the_local_gateway())
    result["load_average_after"] = os.getloadavg()[0]
    name = "history-latest-pg.json" if PG else "history-latest-wal.json" if WAL else "history-latest.json"
    out = ROOT / "bench" / "results" / name
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
