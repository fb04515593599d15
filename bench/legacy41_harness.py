"""Runs in the 4.1.0 virtualenv (tests/upgrade/legacy_wheels/builder.py makes it): 4.1.0's own
``WebSocketSession.objects....send_message`` (10 threads per gateway, one boto3 client) to the
benchmark's open sockets, through the same local gateway as the current package.

The one change: 4.1.0 derives the endpoint from the record (``https://{api_id}.execute-api...``,
AWS only), so its ``get_boto3_client`` is wrapped to pass the local gateway's URL as
``endpoint_url`` instead; the client, its Config (pool size, timeouts, retries) and the sending
code are 4.1.0's. Its requests are SigV4-signed (as against AWS); the gateway ignores signatures.

    python legacy41_harness.py IDS_FILE ENDPOINT_URL PAYLOAD_JSON
stdout: "warm" after a 10-socket warm-up send, then (after a line on stdin) one JSON line.
"""

import json
import os
import sys
import tempfile
import time

import django
from django.conf import settings


def main(ids_file, endpoint_url, payload_json):
    db = os.path.join(tempfile.mkdtemp(prefix="ws-bench-41-"), "db.sqlite3")
    settings.configure(
        SECRET_KEY="bench-41",
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django_aws_api_gateway_websockets",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db}},
        AWS_GATEWAY_REGION_NAME="us-east-1",
        AWS_ACCESS_KEY_ID="AKIDBENCHEXAMPLE",
        AWS_SECRET_ACCESS_KEY="bench/secret/EXAMPLEKEY",
        WEBSOCKETS={"push_changes_to_aws": False, "gateway_secret": ["bench-41-secret-0123456789abcdefghijkl"]},
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django_aws_api_gateway_websockets import models

    original = models.get_boto3_client

    def get_boto3_client(service="apigatewayv2", **kwargs):
        if service == "apigatewaymanagementapi":
            kwargs["endpoint_url"] = endpoint_url
        return original(service, **kwargs)

    models.get_boto3_client = get_boto3_client
    gateway = models.ApiGateway.objects.create(api_name="bench", api_id="bench00001", stage_name="bench")
    with open(ids_file) as file:
        ids = file.read().split()
    models.WebSocketSession.objects.bulk_create(
        [
            models.WebSocketSession(connection_id=cid, channel_name="all", api_gateway=gateway, connected=True)
            for cid in ids
        ],
        batch_size=500,
    )
    payload = json.loads(payload_json)
    sessions = models.WebSocketSession.objects.filter(channel_name="all")
    warm = list(sessions.order_by("pk").values_list("pk", flat=True)[:10])
    sessions.filter(pk__in=warm).send_message({"warm": 1})
    print("warm", len(warm), flush=True)
    sys.stdin.readline()
    start, cpu = time.perf_counter(), time.process_time()
    sent = sessions.send_message(payload)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "sent": len(sent), "n": len(ids)}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
