"""`make bench`: CPU per call, broadcast fan-out, serial baseline, gateway relay, SQL per event.

Three processes, as in production: this one sends (the Django side), `runwsgateway` plays API
Gateway (with --management-latency-ms), `bench/clients.py` holds the browsers' sockets.
Prints a table and writes bench/results/latest.json. Figures are from this one run.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = Path(tempfile.mkdtemp(prefix="ws-bench-")) / "bench.sqlite3"
os.environ["BENCH_DB"] = str(DB)
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from bench import percall  # noqa: E402
from bench.stack import GATEWAY_PORT, CpuMeter, cpu_seconds, open_sockets, start_clients, start_gateway  # noqa: E402
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession  # noqa: E402
from django_aws_api_gateway_websockets.sending import management_client, send_to_sessions  # noqa: E402

N_BROADCAST = int(os.environ.get("BENCH_N", 10_000))
N_SERIAL = int(os.environ.get("BENCH_SERIAL_N", 1_000))
N_RELAY_SOCKETS = 1_000
RELAY_MESSAGES_EACH = 5


def timed_broadcast(clients, gateway, n, profile_to=None):
    """Seconds to broadcast to the ``n`` open sockets, and a CpuMeter of the sender (this
    process), the gateway and the clients over that time."""
    import hashlib

    from django_aws_api_gateway_websockets.sending import encode_message

    payload = {"type": "bench", "text": "x" * 64}
    clients.ask("sockets 0")  # per-socket frame counts from here
    profiler = None
    if profile_to:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="disabled")
        profiler.start()
    meter = CpuMeter("sender", gateway=gateway.proc.pid, clients=clients.proc.pid).start()
    start = time.perf_counter()
    result = send_to_sessions(WebSocketSession.objects.filter(channel_name="all"), payload)
    elapsed = time.perf_counter() - start
    if profiler:
        profiler.stop()
        Path(profile_to).write_text(profiler.output_text(unicode=False, show_all=False))
    received = int(clients.ask(f"expect {n} 30")[1])
    meter.stop()
    assert len(result.delivered) == n and received == n, (len(result.delivered), received, result.failed)
    # Each socket received exactly the broadcast's frame, once.
    exact, missing, duplicated, wrong = map(
        int, clients.ask(f"sockets {hashlib.sha1(encode_message(payload)).hexdigest()}")[1:]
    )
    assert (exact, missing, duplicated, wrong) == (n, 0, 0, 0), (exact, missing, duplicated, wrong)
    return elapsed, meter


def profile_gateway(gateway, name):
    """py-spy on the gateway process for the next few seconds (BENCH_PROFILE=1): where its CPU goes."""
    out = ROOT / "bench" / "results" / name
    spy = subprocess.Popen(
        [
            "py-spy",
            "record",
            "--pid",
            str(gateway.proc.pid),
            "--duration",
            "3",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return spy, out


def top_self_time(path, n=12):
    """The functions a py-spy raw profile spent most samples in (leaf frames), as text lines."""
    samples, total = {}, 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1]
        samples[leaf] = samples.get(leaf, 0) + int(count)
        total += int(count)
    ranked = sorted(samples.items(), key=lambda item: -item[1])[:n]
    return [f"{count / total:6.1%}  {leaf}" for leaf, count in ranked]


def serial_loop(clients, record, ids):
    client = management_client(record)
    payload = json.dumps({"type": "bench", "text": "x" * 64}).encode()
    start = time.perf_counter()
    for cid in ids:
        client.post_to_connection(ConnectionId=cid, Data=payload)
    elapsed = time.perf_counter() - start
    assert int(clients.ask(f"expect {len(ids)} 30")[1]) == len(ids)
    return elapsed


def query_counts():
    """Every SQL statement per event on PostgreSQL, as a user's requests run (bench/queries.py)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "queries.py")], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    if done.returncode:
        return {
            "queries_error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        }
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    sql = counts.pop("queries_sql")
    (ROOT / "bench" / "results" / "queries-sql.json").write_text(json.dumps(sql, indent=2) + "\n")
    return counts


def subscription_figures():
    """Subscriptions on PostgreSQL (bench/subscriptions.py): subscribe/unsubscribe statements, the
    broadcast to connections of 4 channels against today's single-channel one, a client event's CPU."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "subscriptions.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode:
        return {
            "subscriptions_error": done.stderr.strip().splitlines()[-1]
            if done.stderr.strip()
            else f"exit {done.returncode}"
        }
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    sql = figures.pop("subscribe_sql")
    (ROOT / "bench" / "results" / "subscriptions-sql.json").write_text(json.dumps(sql, indent=2) + "\n")
    return figures


def sending_extras(clients, gateway, record, ids, broadcast_seconds):
    """The sending engine's checks of one run (the gateway at 10 ms latency, sockets open):
    4.1.0's own send_message, the broadcast split over Celery worker processes under AWS's
    throttle, and the process-lifetime check (sends of every size from 1 to 128)."""
    from bench import legacy41, multiworker

    results = {}
    n41 = min(int(os.environ.get("BENCH_41_N", 2_000)), len(ids))
    try:
        results.update(legacy41.measure(clients, ids[:n41], f"http://127.0.0.1:{GATEWAY_PORT}/{record.stage_name}"))
        per_message_41 = results["upstream_41_send_seconds"] / n41
        results["broadcast_ratio_vs_upstream_41_send"] = per_message_41 / (broadcast_seconds / len(ids))
    except Exception as exc:  # no package index for the 4.1.0 wheel, ...
        results["upstream_41_send_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    try:
        results.update(
            multiworker.measure(
                clients, gateway, record, len(ids), processes=int(os.environ.get("BENCH_MW_PROCESSES", 3))
            )
        )
    except Exception as exc:  # no redis-server, ...
        results["multiworker_broadcast_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    results.update(lifetime_check(clients))
    return results


def scaled_throttle_phase(record, backend, clients):
    """The multi-worker broadcast with the gateway enforcing a throttle this machine can reach."""
    from bench import multiworker

    rate, burst = int(os.environ.get("BENCH_GW_RATE", 2_000)), int(os.environ.get("BENCH_GW_BURST", 1_000))
    throttled = (str(ROOT / "bench" / "throttled_gateway.py"), str(rate), str(burst))
    gateway = start_gateway(record, backend, "--management-latency-ms", "10", command=throttled)
    results = {}
    try:
        n = len(open_sockets(clients, record, N_BROADCAST))
        for sharing, suffix in (("processes", ""), ("cache", "_shared_cache"), ("none", "_unshared")):
            prefix = "multiworker_scaled_throttle" + suffix
            try:
                results.update(
                    multiworker.measure(
                        clients,
                        gateway,
                        record,
                        n,
                        processes=int(os.environ.get("BENCH_MW_PROCESSES", 3)),
                        sharing=sharing,
                        prefix=prefix,
                        account_rate=rate,
                        burst=burst,
                    )
                )
            except Exception as exc:
                results[f"{prefix}_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        gateway.stop()
    return results


def rss_mb():
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def lifetime_check(clients):
    """Sends of every size from 1 to 128 through one endpoint: pools kept, and RSS growth."""
    from django_aws_api_gateway_websockets.backends import AiohttpBackend, Endpoint, get_backend

    rows = list(WebSocketSession.objects.filter(channel_name="all").order_by("pk")[:128])
    send_to_sessions(rows, {"warm": 1})  # the pool at its largest first
    clients.ask("expect 128 30")
    before = rss_mb()
    for size in range(1, 129):
        send_to_sessions(rows[:size], {"size": size})
    received = int(clients.ask(f"expect {sum(range(1, 129))} 60")[1])
    clients.ask("sockets 0")
    backend = get_backend()
    endpoint = Endpoint.for_gateway(rows[0].api_gateway)
    return {
        "lifetime_sends_1_to_128_frames_received": received,
        "lifetime_pools_for_the_endpoint": backend.pool_count(endpoint)
        if isinstance(backend, AiohttpBackend)
        else None,
        "lifetime_rss_growth_mb": rss_mb() - before,
    }


def main():
    call_command("migrate", verbosity=0)
    record = ApiGateway.objects.create(api_name="bench", api_id="bench00001", stage_name="bench", region="us-east-1")
    clients, backend = start_clients()
    results = percall.measure()  # first, while the other processes are idle
    gateway, gateway_profile = None, []
    try:
        gateway = start_gateway(record, backend, "--management-latency-ms", "10")
        ids = open_sockets(clients, record, N_BROADCAST)
        results["serial_1000_latency10ms_seconds"] = serial_loop(clients, record, ids[:N_SERIAL])
        profiling = bool(os.environ.get("BENCH_PROFILE"))
        profile = ROOT / "bench" / "results" / "profile-broadcast.txt" if profiling else None
        seconds, meter = timed_broadcast(clients, gateway, N_BROADCAST, profile)
        results["broadcast_10000_latency10ms_seconds"] = seconds
        results["broadcast_10000_latency10ms_sender_cpu_seconds"] = meter.used["sender"]
        results["broadcast_10000_latency10ms_cpu_seconds"] = meter.used
        results["broadcast_10000_latency10ms_cpu_bound_seconds"] = meter.bound_seconds
        results.update(sending_extras(clients, gateway, record, ids, seconds))
        gateway.stop()

        gateway = start_gateway(record, backend)
        open_sockets(clients, record, N_BROADCAST)
        seconds, meter = timed_broadcast(clients, gateway, N_BROADCAST)
        results["broadcast_10000_latency0ms_seconds"] = seconds
        results["broadcast_10000_latency0ms_cpu_seconds"] = meter.used
        results["broadcast_10000_latency0ms_cpu_bound_seconds"] = meter.bound_seconds
        gateway.stop()

        results.update(scaled_throttle_phase(record, backend, clients))

        gateway = start_gateway(record, backend, "--two-way")
        open_sockets(clients, record, N_RELAY_SOCKETS)
        spy = profile_gateway(gateway, "profile-gateway-relay.txt") if profiling else None
        cpu_before = cpu_seconds(gateway.proc.pid), cpu_seconds(clients.proc.pid)
        relay_start = time.perf_counter()
        _, rate, p99 = clients.ask(f"relay {RELAY_MESSAGES_EACH}")
        relay_wall = time.perf_counter() - relay_start
        # Busy share of one core per process: which side of the relay is the limit.
        results["gateway_relay_gateway_core_share"] = (cpu_seconds(gateway.proc.pid) - cpu_before[0]) / relay_wall
        results["gateway_relay_clients_core_share"] = (cpu_seconds(clients.proc.pid) - cpu_before[1]) / relay_wall
        if spy:
            spy[0].wait(timeout=60)
            gateway_profile = top_self_time(spy[1])
        results["gateway_relay_msgs_per_s"], results["gateway_relay_p99_ms"] = float(rate), float(p99)
        gateway.stop()
    finally:
        if gateway is not None:
            gateway.stop()
        clients.ask("close")
        clients.stop(interrupt=False)
    per_message_serial = results["serial_1000_latency10ms_seconds"] / N_SERIAL
    per_message_broadcast = results["broadcast_10000_latency10ms_seconds"] / N_BROADCAST
    results["broadcast_ratio_vs_serial"] = per_message_serial / per_message_broadcast
    results["broadcast_10000_latency10ms_msgs_per_s"] = N_BROADCAST / results["broadcast_10000_latency10ms_seconds"]
    results.update(query_counts())
    results.update(subscription_figures())
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    out = ROOT / "bench" / "results" / "latest.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    width = max(map(len, results))
    for key, value in results.items():
        shown = f"{value:.3f}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    print(f"\nwritten to {out.relative_to(ROOT)}")
    if gateway_profile:
        print("\ngateway during the relay, share of samples by function (py-spy):", *gateway_profile, sep="\n")


if __name__ == "__main__":
    main()
