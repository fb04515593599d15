"""`make bench` (part 2): $connect, message and $disconnect through the real stack, for this
package and for the 4.1.0 release, in one run (docs/architecture.md, Performance).

For each target: a fresh PostgreSQL database, migrated and seeded by that package's own code
(bench/connect_project/seed.py: users, their login sessions, the gateway record, one fresh
single-use token per connect); gunicorn with 2 workers (gthread, keep-alive) serving the same
project (bench/connect_project: same settings, URLs, middleware); bench/loadgen.py sending the
same requests on keep-alive connections: each connect carries the login cookie, a token, a
channel, the source IP (50 IPs, 50 users) and both packages' gateway headers; rate limiting is
on (a limit the run does not reach: the limiter does its work on every connect). 4.1.0 runs in
its own virtualenv with its wheel (tests/upgrade/legacy_wheels/builder.py makes it; gunicorn is added).

Measured per phase: requests per second, p99 latency, the gunicorn workers' CPU per request
(user + system, /proc) and the PostgreSQL backends' CPU per request. Writes
bench/results/connect-latest.json and prints a table.

Environment: BENCH_CONNECT_N (connects per target, default 6000), BENCH_CONNECT_CLIENTS
(keep-alive connections, default 16), BENCH_GUNICORN_THREADS (default 2),
BENCH_CONNECT_TARGETS ("ours,41,ours-redis,empty"), PGHOST/PGPORT/PGUSER. ``*_cpu_bound_per_s``:
the most requests/s the machine's cores allow at the CPU measured per request.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django_aws_api_gateway_websockets import protocol  # Django-free: the wire contract

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "bench" / "connect_project"
N = int(os.environ.get("BENCH_CONNECT_N", 6000))
WARM = int(os.environ.get("BENCH_CONNECT_WARM", 600))
CLIENTS = int(os.environ.get("BENCH_CONNECT_CLIENTS", 16))
THREADS = int(os.environ.get("BENCH_GUNICORN_THREADS", 2))
# "ours-redis": this package with its rate-limit counters in Redis (a redis-server the run starts).
# "empty": the ceiling, a view that does nothing behind the same gunicorn, middleware and
# requests (keys *_empty_view): what this machine serves before the package does any work.
TARGETS = os.environ.get("BENCH_CONNECT_TARGETS", "ours,41,ours-redis,empty").split(",")
N_USERS = N_IPS = 50
HOST = "bench.example.com"
PG = {
    "host": os.environ.get("PGHOST", "127.0.0.1"),
    "port": os.environ.get("PGPORT", "5432"),
    "user": os.environ.get("PGUSER", "postgres"),
}
CLK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_admin(sql):
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if sql.lstrip().upper().startswith("SELECT") else None


def cpu_seconds(pid):
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK


def children(pid):
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def legacy_python():
    """The 4.1.0 wheel's virtualenv (made once by the legacy-wheel builder), with gunicorn."""
    sys.path.insert(0, str(ROOT))
    from tests.upgrade.legacy_wheels import builder

    python = builder.ensure_venv("4.1.0")
    if subprocess.run([str(python), "-c", "import gunicorn"], capture_output=True).returncode:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "gunicorn>=22"],
            check=True,
            env=builder.clean_env(),
        )
    return python


def target_env(target, db, redis_url=None):
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PGPASSWORD")}
    path = [str(PROJECT)] + ([str(ROOT)] if target != "41" else [])
    if redis_url:
        env["BENCH_RATE_LIMIT_CACHE"] = redis_url
    if target == "empty":
        env["BENCH_EMPTY_VIEW"] = "1"
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench_settings",
            "BENCH_TARGET": "41" if target == "41" else "ours",
            "BENCH_PG_NAME": db,
            "PYTHONPATH": os.pathsep.join(path),
            "PYTHONNOUSERSITE": "1",
            "PGHOST": PG["host"],
            "PGPORT": PG["port"],
            "PGUSER": PG["user"],
        }
    )
    return env


def build_requests(seed, cids):
    """(connects, messages, disconnects): raw HTTP/1.1 requests, the same shape for both targets."""
    api_id, secret = seed["api_id"], seed["secret"]

    def common(cid, i, length):
        ip = f"198.51.100.{i % N_IPS + 1}"
        return (
            f"Host: {HOST}\r\nContent-Length: {length}\r\nConnectionid: {cid}\r\n"
            f"X-Amzn-Apigateway-Api-Id: {api_id}\r\nX-Gateway-Secret: {secret}\r\nX-Ws-Gateway-Secret: {secret}\r\n"
            f"X-Source-Ip: {ip}\r\nX-Forwarded-For: {ip}\r\nX-Real-Ip: {ip}\r\nX-Forwarded-Proto: https\r\n"
            f"X-Forwarded-Port: 443\r\nX-Amzn-Trace-Id: {protocol.trace_id()}\r\n"
            f"User-Agent: {protocol.USER_AGENT_PREFIX}{api_id}\r\n"
        )

    connects, messages, disconnects = [], [], []
    body = '{"handler": "bench"}'
    for i, (cid, c) in enumerate(zip(cids, seed["connects"], strict=False)):
        connects.append(
            f"POST /ws/connect?ws_token={c['token']}&channel=bench HTTP/1.1\r\n{common(cid, i, 0)}"
            f"Cookie: sessionid={c['session']}\r\nOrigin: https://{HOST}\r\n"
            "Sec-Websocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            f"Sec-Websocket-Key: {secrets.token_urlsafe(16)}==\r\nSec-Websocket-Version: 13\r\n\r\n"
        )
        messages.append(
            f"POST /ws/default HTTP/1.1\r\n{common(cid, i, len(body))}Content-Type: application/json\r\n\r\n{body}"
        )
        disconnects.append(f"POST /ws/disconnect HTTP/1.1\r\n{common(cid, i, 0)}\r\n")
    return connects, messages, disconnects


def load(port, requests, tmp):
    path = Path(tmp) / "requests.json"
    path.write_text(json.dumps(requests))
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "loadgen.py"), "127.0.0.1", str(port), str(CLIENTS), str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def start_redis():
    """A redis-server of the run's own (``None`` when the binary is missing)."""
    import shutil

    if not shutil.which("redis-server"):
        return None, None
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return server, f"redis://127.0.0.1:{port}/0"


def run_target(target, python, redis_url=None):
    db = f"bench_connect_{target.replace('-', '_')}_{os.getpid()}"
    pg_admin(f'DROP DATABASE IF EXISTS "{db}"')
    pg_admin(f'CREATE DATABASE "{db}"')
    env = target_env(target, db, redis_url)
    gunicorn = None
    with tempfile.TemporaryDirectory(prefix="ws-bench-connect-") as tmp:
        try:
            seed_path = Path(tmp) / "seed.json"
            subprocess.run(
                [str(python), str(PROJECT / "seed.py"), str(WARM + N), str(N_USERS), str(seed_path)],
                cwd=PROJECT,
                env=env,
                check=True,
            )
            seed = json.loads(seed_path.read_text())
            cids = [f"b{target.replace('-', '')}{i:09d}AA=" for i in range(WARM + N)]
            connects, messages, disconnects = build_requests(seed, cids)
            port = free_port()
            gunicorn = subprocess.Popen(
                [
                    str(python),
                    "-m",
                    "gunicorn",
                    "bench_wsgi:application",
                    "--workers",
                    "2",
                    "--worker-class",
                    "gthread",
                    "--threads",
                    str(THREADS),
                    "--keep-alive",
                    "75",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--log-level",
                    "warning",
                ],
                cwd=PROJECT,
                env=env,
            )
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            # Warm-up: every route once per worker thread and more, imports and caches loaded.
            for phase in (connects[:WARM], messages[:WARM], disconnects[:WARM]):
                warm = load(port, phase, tmp)
                assert warm["statuses"] == {"200": len(phase)}, (target, warm)
            results = {}
            for name, phase in (
                ("connect", connects[WARM:]),
                ("message", messages[WARM:]),
                ("disconnect", disconnects[WARM:]),
            ):
                workers = children(gunicorn.pid)
                backends = [row[0] for row in pg_admin(f"SELECT pid FROM pg_stat_activity WHERE datname = '{db}'")]
                cpu_before = sum(map(cpu_seconds, workers)), sum(map(cpu_seconds, backends))
                measured = load(port, phase, tmp)
                cpu_after = sum(map(cpu_seconds, workers)), sum(map(cpu_seconds, backends))
                assert measured["statuses"] == {"200": len(phase)}, (target, name, measured)
                results[name] = {
                    "per_s": measured["per_s"],
                    "p50_ms": measured["p50_ms"],
                    "p99_ms": measured["p99_ms"],
                    "cpu_ms_per_request": (cpu_after[0] - cpu_before[0]) * 1000 / len(phase),
                    "db_cpu_ms_per_request": (cpu_after[1] - cpu_before[1]) * 1000 / len(phase),
                }
            return results
        finally:
            if gunicorn is not None:
                gunicorn.send_signal(signal.SIGTERM)
                gunicorn.wait(timeout=30)
            pg_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def main():
    loadavg = os.getloadavg()
    pythons = {"ours": Path(sys.executable), "ours-redis": Path(sys.executable), "empty": Path(sys.executable)}
    if "41" in TARGETS:
        pythons["41"] = legacy_python()
    redis, redis_url = start_redis() if "ours-redis" in TARGETS else (None, None)
    measured = {}
    try:
        for target in TARGETS:
            if target == "ours-redis" and redis_url is None:
                print("ours-redis: skipped, no redis-server on PATH", file=sys.stderr)
                continue
            measured[target] = run_target(target, pythons[target], redis_url if target == "ours-redis" else None)
    finally:
        if redis is not None:
            redis.terminate()
            redis.wait(timeout=30)
    results = {}
    ours = measured.get("ours")
    theirs = measured.get("41")
    for route in ("connect", "message", "disconnect"):
        for target, figures in measured.items():
            suffix = {"ours": "", "41": "_upstream_41", "ours-redis": "_redis_limiter", "empty": "_empty_view"}[target]
            f = figures[route]
            if route == "connect":
                results[f"connect_per_s_token_ratelimit_postgres{suffix}"] = f["per_s"]
            else:
                results[f"{route}_per_s_postgres{suffix}"] = f["per_s"]
            results[f"{route}_p99_ms{suffix}"] = f["p99_ms"]
            results[f"{route}_cpu_ms_per_request{suffix}"] = f["cpu_ms_per_request"]
            results[f"{route}_db_cpu_ms_per_request{suffix}"] = f["db_cpu_ms_per_request"]
            # The most requests/s this machine's cores could serve at that CPU cost (gunicorn
            # workers + PostgreSQL; the load generator's share left out): when the measured rate
            # is near it, the machine, not the code, sets the pace.
            results[f"{route}_cpu_bound_per_s{suffix}"] = (
                1000 * CORES / (f["cpu_ms_per_request"] + f["db_cpu_ms_per_request"])
            )
        if ours and theirs:
            results[f"{route}_cpu_ratio_vs_upstream_41"] = (
                ours[route]["cpu_ms_per_request"] / theirs[route]["cpu_ms_per_request"]
            )
    results["setup"] = {
        "requests_per_route": N,
        "warm_up": WARM,
        "keepalive_clients": CLIENTS,
        "gunicorn": f"2 workers, gthread, {THREADS} threads",
        "cpus": CORES,
        "python": sys.version.split()[0],
        "rate_limit_backend": "database (ours, 41); redis (ours-redis, *_redis_limiter keys)",
        "loadavg_before": loadavg,
    }
    out = ROOT / "bench" / "results" / os.environ.get("BENCH_CONNECT_OUT", "connect-latest.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    print(f"\nwritten to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
