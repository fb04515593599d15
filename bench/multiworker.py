"""A broadcast split over several Celery worker processes, against AWS's account-level throttle.

The local gateway enforces AWS's limit on ``@connections`` calls (10,000/s, bursts of 5,000,
shared by every caller: ``LimitExceededException`` 429 beyond). ``broadcast_in_chunks`` enqueues
the chunks on Redis; a prefork Celery worker with W processes sends them. Every process keeps
to its share of the account's rate (``send_rate_processes`` = W, or one budget in Redis with
``send_rate_limit_cache``), so the processes together stay under the limit; a 429 that still
happens is retried. Checked: every socket received exactly the broadcast's frame, once.

Called by ``bench/run.py`` (``make bench``) with the sockets already open; keys:

* ``multiworker_broadcast_delivered_fraction``: frames received exactly once / sockets (1.0)
* ``multiworker_broadcast_seconds``: from enqueuing to the last frame received
* ``multiworker_broadcast_seconds_vs_ideal``: that / (sockets / 10,000 per s), the time the
  account's sustained rate allows (goal ≤ 1.3)
* ``multiworker_broadcast_429_retries``: throttled calls retried by the workers
* ``multiworker_broadcast_cpu_seconds``: CPU used meanwhile by the workers, the broker, the
  gateway and the clients; ``_cpu_bound_seconds_vs_ideal``: that total over the machine's cores,
  against the ideal: the least this machine could take for the same work, whatever the sender

The same with ``multiworker_scaled_throttle_`` keys: the gateway enforcing a lower throttle
(bench/throttled_gateway.py), so that the throttle, not this 2-core machine, is the limit.
"""

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.stack import CpuMeter

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_RATE = 10_000
PAYLOAD = {"type": "bench-multiworker", "text": "y" * 64}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis():
    port = _free_port()
    directory = tempfile.mkdtemp(prefix="ws-bench-redis-")
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return redis, f"redis://127.0.0.1:{port}", directory
        except OSError:
            time.sleep(0.05)
    redis.kill()
    raise RuntimeError("redis-server did not start")


def start_workers(redis_url, processes, sharing, account_rate):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "bench.settings_multiworker",
        "BENCH_REDIS_URL": redis_url,
        "BENCH_SEND_PROCESSES": str(processes) if sharing == "processes" else "1",
        "BENCH_RATE_CACHE": "send-rate" if sharing == "cache" else "",
        "BENCH_ACCOUNT_RATE": str(account_rate),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.celery_app",
            "worker",
            "-P",
            "prefork",
            "-c",
            str(processes),
            "-O",
            "fair",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _app(redis_url):
    import celery

    app = celery.Celery("bench-enqueue", broker=f"{redis_url}/0", backend=f"{redis_url}/1", set_as_current=True)
    app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")
    app.set_default()
    return app


def measure(
    clients,
    gateway,
    record,
    n,
    *,
    processes=3,
    sharing="processes",
    chunks_per_process=2,
    prefix="multiworker",
    account_rate=ACCOUNT_RATE,
    burst=5_000,
):
    """Broadcast to the ``n`` open sockets (rows of ``record`` in channel "all") from ``processes``
    workers, the gateway enforcing ``account_rate`` calls/s with bursts of ``burst``. ``sharing``:
    "processes" (``send_rate_processes``), "cache" (``send_rate_limit_cache`` on Redis) or "none"
    (every process at the full rate: what happens without sharing)."""
    from django_aws_api_gateway_websockets.models import WebSocketSession
    from django_aws_api_gateway_websockets.sending import encode_message
    from django_aws_api_gateway_websockets.tasks import broadcast_in_chunks

    redis, redis_url, directory = start_redis()
    workers = start_workers(redis_url, processes, sharing, account_rate)
    results = {}
    try:
        _app(redis_url)
        rows = WebSocketSession.objects.filter(api_gateway=record, channel_name="all")
        # Warm: every worker process imports, connects its pool (as long-running workers are).
        warm = list(rows.order_by("pk").values_list("pk", flat=True)[: processes * 8])
        for r in broadcast_in_chunks(rows.filter(pk__in=warm), {"warm": 1}, chunk_size=1):
            r.get(timeout=120)
        clients.ask(f"expect {len(warm)} 30")
        clients.ask("sockets 0")  # forget the warm frames
        time.sleep(0.5)

        chunk_size = -(-n // (processes * chunks_per_process))
        meter = CpuMeter(
            workers=workers.pid, broker=redis.pid, gateway=gateway.proc.pid, clients=clients.proc.pid
        ).start()
        start = time.perf_counter()
        pending = broadcast_in_chunks(rows, PAYLOAD, chunk_size=chunk_size)
        outcomes = [r.get(timeout=300) for r in pending]
        received, _ = clients.ask(f"expect {n} 60")[1:]
        elapsed = time.perf_counter() - start
        meter.stop()
        sha1 = hashlib.sha1(encode_message(PAYLOAD)).hexdigest()
        exact, missing, duplicated, wrong = map(int, clients.ask(f"sockets {sha1}")[1:])
        delivered = sum(o["delivered"] for o in outcomes)
        failed = {cid: code for o in outcomes for cid, code in o["failed"].items()}
        ideal = n / account_rate
        results.update(
            {
                f"{prefix}_broadcast_throttle": f"{account_rate}/s, burst {burst}",
                f"{prefix}_broadcast_rate_sharing": {
                    "cache": "send_rate_limit_cache (Redis)",
                    "processes": f"send_rate_processes={processes}",
                    "none": "none",
                }[sharing],
                f"{prefix}_broadcast_processes": processes,
                f"{prefix}_broadcast_sockets": n,
                f"{prefix}_broadcast_seconds": elapsed,
                f"{prefix}_broadcast_ideal_seconds": ideal,
                f"{prefix}_broadcast_seconds_vs_ideal": elapsed / ideal,
                f"{prefix}_broadcast_delivered_fraction": exact / n,
                f"{prefix}_broadcast_reported_delivered": delivered,
                f"{prefix}_broadcast_frames_received": int(received),
                f"{prefix}_broadcast_sockets_missing_duplicated_wrong": [missing, duplicated, wrong],
                f"{prefix}_broadcast_failed": len(failed),
                f"{prefix}_broadcast_429_retries": sum(o.get("throttled_retries", 0) for o in outcomes),
                f"{prefix}_broadcast_cpu_seconds": meter.used,
                f"{prefix}_broadcast_cpu_bound_seconds_vs_ideal": meter.bound_seconds / ideal,
            }
        )
        if failed:
            results[f"{prefix}_broadcast_failed_example"] = next(iter(failed.items()))
    finally:
        workers.terminate()
        try:
            workers.wait(timeout=30)
        except subprocess.TimeoutExpired:
            workers.kill()
            workers.wait()
        redis.terminate()
        redis.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)
    return results
