"""CPU per ``@connections`` call in the sending process, by transport, and per SigV4 signature.

The figure that decides how many calls one core can make: 10,000 calls in 2 s on one core
leave 200 µs each, for everything. A stand-in Management API answers 200 from another process
(so its CPU is not counted); this process's CPU time (all threads, including the backend's
event loop) is divided by the number of calls. ``sender_cpu_us_per_call_tls_sigv4`` is the
figure that counts against AWS: over TLS, every call signed with SigV4.

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


def serve(tls=False):
    """The stand-in endpoint: 200 to every POST, keep-alive (runs in its own process); with
    ``tls``, over TLS with a certificate from a private CA (prints the port and the CA file)."""
    import asyncio
    import ssl
    import tempfile

    from aiohttp import web

    async def ok(request):
        await request.read()
        return web.Response(status=200)

    async def main():
        app = web.Application()
        app.router.add_post("/bench/@connections/{id}", ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        context, ca_file = None, ""
        if tls:
            sys.path.insert(0, str(ROOT))
            from tests.faulty_server import make_ca_and_server_cert

            ca, cert, key = make_ca_and_server_cert(Path(tempfile.mkdtemp(prefix="ws-bench-tls-")))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            ca_file = str(ca)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], ca_file, flush=True)
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

    from django_aws_api_gateway_websockets import aws, backends
    from django_aws_api_gateway_websockets.backends.sigv4 import SigV4Signer

    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    tls_server = subprocess.Popen([sys.executable, __file__, "--serve-tls"], stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}/bench"
        tls_port, ca_file = tls_server.stdout.readline().split()
        tls_url = f"https://127.0.0.1:{tls_port}/bench"
        client = aws.get_client("apigatewaymanagementapi", endpoint_url=url, max_pool_connections=64)
        results = {}
        ids = [f"conn{i}=" for i in range(n)]

        def boto3_loop(k):
            for cid in ids[:k]:
                client.post_to_connection(ConnectionId=cid, Data=PAYLOAD)

        results["cpu_per_call_us_boto3"] = _cpu_per_call(boto3_loop, min(n, 1_000))
        options = backends.SendOptions(
            workers=64, retries=0, base_delay=0, timeout=10, connect_timeout=3, rate=0, processes=1, rate_cache=""
        )

        def fan_out(k, backend, endpoint):
            outcome = backend.post_many([(cid, endpoint) for cid in ids[:k]], PAYLOAD, options)
            failed = {cid: e for cid, e in outcome.items() if e is not None}
            assert not failed, f"{len(failed)} failed, e.g. {next(iter(failed.items()))}"

        backend = backends.AiohttpBackend()
        plain = backends.Endpoint(url, "eu-west-1")
        results["cpu_per_call_us_aiohttp"] = _cpu_per_call(lambda k: fan_out(k, backend, plain), n)
        # As against AWS: TLS and a SigV4 signature per call (the local endpoint's own CA trusted
        # through AWS_CA_BUNDLE, exactly as boto3 would).
        os.environ["AWS_CA_BUNDLE"] = ca_file
        # Stand-in credentials when none are configured (the stand-in endpoint does not check them).
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIDBENCHEXAMPLE")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench/secret/EXAMPLEKEY")
        aws.clear_clients()
        signed = backends.Endpoint(tls_url, "eu-west-1")
        results["sender_cpu_us_per_call_tls_sigv4"] = _cpu_per_call(lambda k: fan_out(k, backend, signed), n)
        tls_client = aws.get_client(
            "apigatewaymanagementapi", endpoint_url=tls_url, region="eu-west-1", max_pool_connections=64
        )

        def boto3_tls_loop(k):
            for cid in ids[:k]:
                tls_client.post_to_connection(ConnectionId=cid, Data=PAYLOAD)

        results["sender_cpu_us_per_call_tls_sigv4_boto3"] = _cpu_per_call(boto3_tls_loop, min(n, 1_000))
        backend.close()
        del os.environ["AWS_CA_BUNDLE"]
        aws.clear_clients()
    finally:
        for process in (server, tls_server):
            process.terminate()
            process.wait()

    credentials = Credentials("AKIDEXAMPLE", "secret/EXAMPLEKEY").get_frozen_credentials()
    host = "abcdef1234.execute-api.eu-west-1.amazonaws.com"
    paths = [f"/prod/@connections/conn{i}%3D" for i in range(n)]
    signer = SigV4Auth(credentials, "execute-api", "eu-west-1")

    def botocore_sign(k):
        for path in paths[:k]:
            signer.add_auth(AWSRequest(method="POST", url=f"https://{host}{path}", data=PAYLOAD))

    ours = SigV4Signer(credentials, "eu-west-1", host, PAYLOAD)

    def package_sign(k):
        for path in paths[:k]:
            ours.headers(path)

    results["sigv4_us_botocore"] = _cpu_per_call(botocore_sign, n)
    results["sigv4_us_package"] = _cpu_per_call(package_sign, n)
    return results


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    elif sys.argv[1:] == ["--serve-tls"]:
        serve(tls=True)
    else:
        sys.path.insert(0, str(ROOT))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
        import django

        django.setup()
        for key, value in measure().items():
            print(f"{key:<24} {value:8.1f} µs")
