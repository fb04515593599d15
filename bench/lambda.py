"""`make bench` (Lambda): CPU per `$connect`, message and `$disconnect` through the Lambda handler
(django_aws_api_gateway_websockets.aws_lambda) against the same requests through Django's WSGI
handler, for the same view in the same process and run; and the Lambda cold start.

Both run in this process, with no network: the WSGI side gets the environ a WSGI server builds
for the HTTP integration's request (X-Gateway-Secret, connectionId, X-Source-Ip, the token);
the Lambda side gets API Gateway's proxy event for an ``AWS_PROXY`` record. Environ and events
are built before the clock starts (a server's parsing and AWS's event are not the function's
work); the handler's own event-to-request translation is measured. Rounds of each alternate so
that both see the same machine. CPU is this process's (``time.process_time``: user + system).

``lambda_cold_start_ms``: a fresh interpreter (the median of BENCH_LAMBDA_COLD runs) timing the
import of the handler, Django's setup and its first ``$connect`` (the interpreter's own start is
not included: Lambda's runtime has started before it imports the handler).

Writes bench/results/lambda-latest.json and prints the keys. Environment: BENCH_LAMBDA_N
(requests per phase and side, default 2000), BENCH_LAMBDA_ROUND (default 200), BENCH_LAMBDA_COLD
(default 5), BENCH_LAMBDA_DB (``sqlite``, the default, or ``postgres``: a fresh database
``ws_bench_lambda`` on PGHOST/PGPORT/PGUSER, bench/settings_pg.py).
"""

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N = int(os.environ.get("BENCH_LAMBDA_N", 2000))
ROUND = int(os.environ.get("BENCH_LAMBDA_ROUND", 200))
COLD = int(os.environ.get("BENCH_LAMBDA_COLD", 5))
DOMAIN = "localhost"  # the events' Host: in bench/settings.py's ALLOWED_HOSTS
DATABASE = os.environ.get("BENCH_LAMBDA_DB", "sqlite")
SETTINGS = "bench.settings_pg" if DATABASE == "postgres" else "bench.settings"
PG_NAME = "ws_bench_lambda"

COLD_START = """
import json, sys, time
started = time.perf_counter()
from django_aws_api_gateway_websockets.aws_lambda import handler
answer = handler(json.loads(sys.argv[1]), None)
elapsed = time.perf_counter() - started
print(json.dumps({"ms": elapsed * 1000, "status": answer["statusCode"]}))
"""


def fresh_pg_database():
    import psycopg

    params = {
        "host": os.environ.get("PGHOST", "127.0.0.1"),
        "port": os.environ.get("PGPORT", "5432"),
        "user": os.environ.get("PGUSER", "postgres"),
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_NAME}")
        conn.execute(f"CREATE DATABASE {PG_NAME}")


def setup(db_path):
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    os.environ["BENCH_DB"] = db_path
    os.environ["BENCH_PG_NAME"] = PG_NAME
    if DATABASE == "postgres":
        fresh_pg_database()
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def wsgi_environ(gateway, path, connection_id, *, query="", body=b"", connect=False):
    from django_aws_api_gateway_websockets.testing import integration_headers

    headers = integration_headers(gateway, connection_id, route="connect" if connect else "default")
    if connect:
        headers["Origin"] = "https://localhost"
    environ = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "HTTP_HOST": "localhost",
    }
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def main():
    tmp = tempfile.mkdtemp(prefix="ws-lambda-bench-")
    db_path = os.path.join(tmp, "db.sqlite3")
    setup(db_path)
    from django.contrib.auth import get_user_model
    from django.core.wsgi import get_wsgi_application

    from django_aws_api_gateway_websockets import tokens
    from django_aws_api_gateway_websockets.aws_lambda import make_handler
    from django_aws_api_gateway_websockets.models import ApiGateway, IntegrationType
    from django_aws_api_gateway_websockets.protocol import new_connection_id
    from django_aws_api_gateway_websockets.testing import lambda_event

    user = get_user_model().objects.create_user("bench", password="pw")
    http_record = ApiGateway.objects.create(api_name="bench-http", api_id="benchhttp01", region="us-east-1")
    lambda_record = ApiGateway.objects.create(
        api_name="bench-lambda", api_id="benchlam001", region="us-east-1", integration_type=IntegrationType.AWS_PROXY
    )
    settings_override = {"rate_limit_max_attempts": 10**9}
    from django.conf import settings

    settings.WEBSOCKETS = settings_override

    wsgi = get_wsgi_application()
    handler = make_handler(view_path="/ws/")

    def start_response(status, headers, exc_info=None):
        return lambda data: None

    def via_wsgi(environ):
        response = wsgi(environ, start_response)
        b"".join(response)
        response.close()
        return response.status_code

    def via_lambda(event):
        return handler(event, None)["statusCode"]

    sides = {"wsgi": (http_record, via_wsgi), "lambda": (lambda_record, via_lambda)}
    connections = {"wsgi": [], "lambda": []}

    def requests_for(phase, side, count):
        record = sides[side][0]
        made = []
        for _ in range(count):
            if phase == "connect":
                cid = new_connection_id()
                connections[side].append(cid)
                raw = tokens.issue_token(user, f"bench-session-{cid}")
                if side == "wsgi":
                    made.append(wsgi_environ(record, "/ws/connect", cid, query=f"ws_token={raw}", connect=True))
                else:
                    made.append(
                        lambda_event(
                            record,
                            "$connect",
                            cid,
                            query={"ws_token": raw},
                            headers={"Origin": "https://localhost"},
                            domain_name=DOMAIN,
                        )
                    )
            else:
                cid = (
                    connections[side][len(made) % len(connections[side])]
                    if phase == "message"
                    else connections[side].pop()
                )
                if side == "wsgi":
                    path = "/ws/default" if phase == "message" else "/ws/disconnect"
                    body = b'{"handler": "default"}' if phase == "message" else b""
                    made.append(wsgi_environ(record, path, cid, body=body))
                else:
                    key = "$default" if phase == "message" else "$disconnect"
                    body = '{"handler": "default"}' if phase == "message" else None
                    made.append(lambda_event(record, key, cid, body=body, domain_name=DOMAIN))
        return made

    # Warm both sides (imports, caches, the statement cache) before measuring.
    for side, (_record, run) in sides.items():
        for request in requests_for("connect", side, 20):
            assert run(request) == 200, side
    results = {}
    for phase in ("connect", "message", "disconnect"):
        cpu = {"wsgi": 0.0, "lambda": 0.0}
        done = {"wsgi": 0, "lambda": 0}
        while done["wsgi"] < N:
            for side in ("wsgi", "lambda"):
                batch = requests_for(phase, side, min(ROUND, N - done[side]))
                run = sides[side][1]
                started = time.process_time()
                statuses = [run(request) for request in batch]
                cpu[side] += time.process_time() - started
                done[side] += len(batch)
                bad = [s for s in statuses if s != 200]
                assert not bad, f"{phase} via {side}: {bad[:3]}"
        for side in ("wsgi", "lambda"):
            results[f"lambda_{phase}_cpu_ms_{side}"] = round(cpu[side] / N * 1000, 4)
        results[f"lambda_{phase}_cpu_ratio_vs_wsgi"] = round(cpu["lambda"] / cpu["wsgi"], 3)

    # Cold start: a fresh interpreter per run, the record and a token already in the database.
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "BENCH_DB": db_path,
        "BENCH_PG_NAME": PG_NAME,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    # (Its settings are bench/settings.py's, with the default rate limit: a user and an IP of its own.)
    cold = []
    for n in range(COLD):
        cid = new_connection_id()
        cold_user = get_user_model().objects.create_user(f"cold{n}", password="pw")
        raw = tokens.issue_token(cold_user, f"bench-cold-{cid}")
        event = lambda_event(
            lambda_record,
            "$connect",
            cid,
            query={"ws_token": raw},
            headers={"Origin": "https://localhost"},
            domain_name=DOMAIN,
            source_ip=f"10.0.0.{n + 1}",
        )
        out = subprocess.run(
            [sys.executable, "-c", COLD_START, json.dumps(event)], env=env, capture_output=True, text=True, check=True
        )
        answer = json.loads(out.stdout.strip().splitlines()[-1])
        assert answer["status"] == 200, out
        cold.append(answer["ms"])
    results["lambda_cold_start_ms"] = round(statistics.median(cold), 1)
    results["lambda_cold_start_ms_min"] = round(min(cold), 1)
    results["lambda_cold_start_ms_max"] = round(max(cold), 1)
    results["lambda_requests_per_phase"] = N
    results["lambda_database"] = DATABASE

    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "lambda-latest.json").write_text(json.dumps(results, indent=2) + "\n")
    for key, value in results.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
