"""CPU per ``@connections`` call in the sending process, by transport, and per SigV4 signature.

The figure that decides how many calls one core can make: 10,000 calls in 2 s on one core
leave 200 µs each, for everything. A stand-in Management API answers 200 from another process
(so its CPU is not counted); this process's CPU time (all threads, including the transport's
event loop) is divided by the number of calls.

    python bench/percall.py          # prints the table; `make bench` records the same keys
"""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CALLS = int(os.environ.get("BENCH_PERCALL_N", 3_000))
PAYLOAD = b'{"type":"bench","text":"' + b"x" * 64 + b'"}'


def serve():
    """The stand-in endpoint: 200 to every POST, keep-alive (runs in its own process)."""
    import asyncio

    from aiohttp import web

    async def ok(request):
        await request.read()
        return web.Response(status=200)

    async def main():
        app = web.Application()
        app.router.add_post("/bench/@connections/{id}", ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def _cpu_per_call(run, n):
    run(max(n // 10, 50))  # warm: connections open, code paths imported
    start = time.process_time()
    run(n)
    return (time.process_time() - start) / n * 1e6


def measure(n=CALLS):
    """``{key: microseconds}``; needs Django set up (any settings with a region)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from django_aws_api_gateway_websockets import aws, transport

    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}/bench"
        client = aws.get_client("apigatewaymanagementapi", endpoint_url=url, max_pool_connections=64)
        results = {}
        ids = [f"conn{i}=" for i in range(n)]

        def boto3_loop(k):
            for cid in ids[:k]:
                client.post_to_connection(ConnectionId=cid, Data=PAYLOAD)

        results["cpu_per_call_us_boto3"] = _cpu_per_call(boto3_loop, min(n, 1_000))
        for name in ("aiohttp", "native"):
            sender = transport.AsyncTransport(
                workers=64, retries=0, base_delay=0, limiter=transport.RateLimiter(0), http=name
            )

            def fan_out(k, sender=sender):
                outcome = sender.post_many([(cid, client) for cid in ids[:k]], PAYLOAD)
                assert all(error is None for error in outcome.values()), outcome

            results[f"cpu_per_call_us_{name}"] = _cpu_per_call(fan_out, n)
    finally:
        server.terminate()
        server.wait()

    credentials = Credentials("AKIDEXAMPLE", "secret/EXAMPLEKEY").get_frozen_credentials()
    host = "abcdef1234.execute-api.eu-west-1.amazonaws.com"
    paths = [f"/prod/@connections/conn{i}%3D" for i in range(n)]
    signer = SigV4Auth(credentials, "execute-api", "eu-west-1")

    def botocore_sign(k):
        for path in paths[:k]:
            signer.add_auth(AWSRequest(method="POST", url=f"https://{host}{path}", data=PAYLOAD))

    ours = transport.SigV4Signer(credentials, "eu-west-1", host, PAYLOAD)

    def package_sign(k):
        for path in paths[:k]:
            ours.headers(path)

    results["sigv4_us_botocore"] = _cpu_per_call(botocore_sign, n)
    results["sigv4_us_package"] = _cpu_per_call(package_sign, n)
    return results


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        sys.path.insert(0, str(ROOT))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
        import django

        django.setup()
        for key, value in measure().items():
            print(f"{key:<24} {value:8.1f} µs")
