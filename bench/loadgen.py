"""A small HTTP/1.1 load generator on keep-alive connections (bench/connect.py runs it).

``python bench/loadgen.py HOST PORT CLIENTS REQUESTS.json``: the file holds a list of raw
requests (latin-1 strings, sent as they are); ``CLIENTS`` connections take them in order from
one queue, each sending the next when its previous answer arrived. Prints one JSON line:
count, seconds, requests per second, p50/p99 latency (ms) and a histogram of statuses.
Reconnects when the server closes a connection. Plain asyncio streams (uvloop when present):
a few tens of microseconds of CPU per request, so the server, not this, is measured.
"""

import asyncio
import json
import sys
import time


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, close = None, False, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, close


async def client(host, port, queue, latencies, statuses):
    reader = writer = None
    while True:
        try:
            request = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        for attempt in range(3):
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = time.perf_counter()
            try:
                writer.write(request)
                status, close = await read_response(reader)
                break
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                reader = writer = None
                if attempt == 2:
                    raise
        latencies.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def main(host, port, clients, path):
    with open(path) as f:
        requests = [r.encode("latin-1") for r in json.load(f)]
    queue = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    latencies, statuses = [], {}
    started = time.perf_counter()
    await asyncio.gather(*(client(host, port, queue, latencies, statuses) for _ in range(clients)))
    seconds = time.perf_counter() - started
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0.0

    print(
        json.dumps(
            {
                "count": len(latencies),
                "seconds": seconds,
                "per_s": len(latencies) / seconds,
                "p50_ms": pct(0.50),
                "p99_ms": pct(0.99),
                "statuses": statuses,
            }
        )
    )


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    host, port, clients, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    asyncio.run(main(host, port, clients, path))
