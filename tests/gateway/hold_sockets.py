"""How many concurrent sockets `runwsgateway` holds: a measurement script, not a test.

    python -m tests.gateway.hold_sockets [N]      # default 1000

Runs `manage.py runwsgateway --two-way` as its own process (SQLite in a temp dir) in front of an
aiohttp backend that accepts every event and echoes messages; this process opens N real
WebSocket clients, keeps them all open, has each send one message and waits for its echo, sends
each one frame through the Management API, then reports timings and the gateway's memory.
"""

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time

import aiohttp
from aiohttp import web


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_backend(connection_ids):
    """Accepts every event, echoes messages, and collects the ids of connected sockets."""

    async def event(request):
        body = await request.read()
        route = request.match_info["route"]
        if route == "connect":
            connection_ids.append(request.headers["connectionId"])
        return web.Response(body=body if route == "default" else b"")

    app = web.Application()
    app.router.add_post("/ws/{route}", event)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/ws/"


def start_gateway(target, db_dir):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": os.getcwd(),
        "SQLITE_NAME": os.path.join(db_dir, "db.sqlite3"),
    }
    env.pop("TEST_DB", None)
    subprocess.run([sys.executable, "-m", "django", "migrate", "-v0"], env=env, check=True)
    port = free_port()
    log_path = os.path.join(db_dir, "gateway.log")
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "runwsgateway", f"127.0.0.1:{port}", "--target", target, "--two-way", "-v0"],
        env=env,
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
    )
    while "Quit with CONTROL-C" not in open(log_path).read():
        assert process.poll() is None, open(log_path).read()
        time.sleep(0.1)
    return process, port, log_path


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    return kb / 1024


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(n):
    ids = []
    runner, target = await start_backend(ids)
    with tempfile.TemporaryDirectory() as db_dir:
        process, port, log_path = start_gateway(target, db_dir)
        try:
            await asyncio.sleep(0.5)
            url = f"ws://127.0.0.1:{port}/local"
            idle_rss = rss_mb(process.pid)
            http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            started = time.perf_counter()
            clients = await asyncio.gather(*(http.ws_connect(url) for _ in range(n)))
            connect_s = time.perf_counter() - started
            # Messages: every socket sends one frame and gets Django's answer back (--two-way).
            started = time.perf_counter()
            await asyncio.gather(*(c.send_str(f'{{"n": {i}}}') for i, c in enumerate(clients)))
            echoes = await asyncio.gather(*(c.receive_str(timeout=60) for c in clients))
            echo_s = time.perf_counter() - started
            assert echoes == [f'{{"n": {i}}}' for i in range(n)]
            # Server -> client: one @connections POST per socket, 100 at a time.
            started = time.perf_counter()
            await post_all(http, port, ids)
            received = await asyncio.gather(*(c.receive_str(timeout=60) for c in clients))
            post_s = time.perf_counter() - started
            assert received == ["{}"] * n
            open_count = sum(not c.closed for c in clients)
            held_rss, cpu = rss_mb(process.pid), cpu_seconds(process.pid)
            await asyncio.gather(*(c.close() for c in clients))
            await http.close()
        finally:
            process.send_signal(2)  # Ctrl-C; the backend must keep answering its $disconnects
            await asyncio.to_thread(process.wait, 60)
            warnings = open(log_path).read().split("Quit with CONTROL-C.", 1)[1].strip()
        await runner.cleanup()
    print(f"sockets open at once:        {open_count} / {n}")
    print(f"connect (incl. $connect):    {connect_s:.2f} s ({n / connect_s:,.0f}/s)")
    print(f"one message each, echoed:    {echo_s:.2f} s ({n / echo_s:,.0f} msg/s)")
    print(f"one @connections POST each:  {post_s:.2f} s ({n / post_s:,.0f} msg/s)")
    print(f"gateway memory:              {idle_rss:.0f} MB idle, {held_rss:.0f} MB holding {n} sockets")
    print(f"gateway CPU for the run:     {cpu:.2f} s")
    print(f"gateway log after the banner: {warnings or '(nothing)'}")


async def post_all(http, port, ids):
    semaphore = asyncio.Semaphore(100)

    async def post(cid):
        async with semaphore:
            async with http.post(f"http://127.0.0.1:{port}/local/@connections/{cid}", data=b"{}") as response:
                assert response.status == 200, response.status

    await asyncio.gather(*(post(cid) for cid in ids))


if __name__ == "__main__":
    asyncio.run(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
