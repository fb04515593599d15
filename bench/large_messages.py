"""`make bench` (large messages, docs/large-messages.md): a 1 MB message to 1,000 sockets.

The real stack of bench/run.py: this process sends with the default send backend, `runwsgateway`
plays API Gateway (10 ms a call, its 128 KB POST limit), bench/clients.py holds the sockets and
puts each message's parts back together (a SHA-1 over the parts in order: every socket must end
with exactly one whole message equal to the one sent). In the same run:

* ``large_message_1mb_to_1000_seconds``: the send of one 1 MB message (9 parts) to 1,000 sockets;
* ``large_message_split_overhead_ratio``: bytes the sockets received ÷ payload bytes delivered
  (the goal is ≤ 1.02);
* ``large_message_vs_8_posts_of_128kb_ratio``: that time ÷ the time of 8 broadcasts of a 128 KB
  message each (alternated, best of two each) (the same bytes, split by hand as a user had to before: what the envelope and the
  ordering cost against the bare posts);
* ``large_message_128kb_to_1000_seconds``: one 128 KB broadcast (one post a socket, no parts).

Writes bench/results/large-latest.json. ``BENCH_LARGE_N`` sockets (1,000).
"""

import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["BENCH_DB"] = str(Path(tempfile.mkdtemp(prefix="ws-bench-large-")) / "bench.sqlite3")
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from bench.stack import open_sockets, start_clients, start_gateway  # noqa: E402
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession  # noqa: E402
from django_aws_api_gateway_websockets.sending import encode_message, send_to_sessions  # noqa: E402

N = int(os.environ.get("BENCH_LARGE_N", 1_000))
MB = 1024 * 1024


def message(size):
    head = len(json.dumps({"type": "bench", "blob": ""}, separators=(",", ":")))
    return {"type": "bench", "blob": "x" * (size - head)}


def broadcast(clients, data, n, messages=1):
    """Seconds to send ``data`` to the ``n`` sockets (and checks every socket got it whole, once)."""
    clients.ask("sockets 0")
    clients.ask("bytes")
    start = time.perf_counter()
    result = send_to_sessions(WebSocketSession.objects.all(), data)
    elapsed = time.perf_counter() - start
    assert len(result.delivered) == n, (len(result.delivered), result.failed)
    assert int(clients.ask(f"expect {n * messages} 120")[1]) == n * messages
    if messages == 1:
        sha1 = hashlib.sha1(encode_message(data)).hexdigest()
        checks = tuple(map(int, clients.ask(f"sockets {sha1}")[1:]))
        assert checks == (n, 0, 0, 0), checks
    received, parts = map(int, clients.ask("bytes")[1:])
    return elapsed, received, parts


def main():
    call_command("migrate", verbosity=0)
    record = ApiGateway.objects.create(api_name="bench", api_id="bench00001", stage_name="bench", region="us-east-1")
    clients, backend = start_clients()
    gateway = None
    results = {}
    try:
        gateway = start_gateway(record, backend, "--management-latency-ms", "10")
        open_sockets(clients, record, N)
        big = message(MB)
        payload_bytes = len(encode_message(big))
        broadcast(clients, message(1024), N)  # warm: pools open
        chunk = message(128 * 1024)

        def by_hand():
            start = time.perf_counter()
            for _ in range(8):
                send_to_sessions(WebSocketSession.objects.all(), chunk)
            elapsed = time.perf_counter() - start
            assert int(clients.ask(f"expect {8 * N} 120")[1]) == 8 * N
            return elapsed

        # Alternated, best of two each: both see the same machine (other jobs share its cores).
        runs, hand = [], []
        for _ in range(2):
            hand.append(by_hand())
            runs.append(broadcast(clients, big, N))
        seconds, received, parts = min(runs)
        results[f"large_message_1mb_to_{N}_seconds"] = seconds
        results["large_message_split_overhead_ratio"] = received / (N * payload_bytes)
        results["large_message_parts_per_socket"] = parts / N
        results["large_message_vs_8_posts_of_128kb_ratio"] = seconds / min(hand)
        results[f"large_message_128kb_to_{N}_seconds"] = broadcast(clients, chunk, N)[0]
    finally:
        if gateway is not None:
            gateway.stop()
        clients.ask("close")
        clients.stop(interrupt=False)
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "sockets": N}
    out = ROOT / "bench" / "results" / "large-latest.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    width = max(map(len, results))
    for key, value in results.items():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
