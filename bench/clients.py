"""The browsers of the benchmark: N WebSocket clients in their own process, plus a stand-in
backend that accepts every $connect (so the sender's process does nothing but send).

Commands on stdin, one per line; answers on stdout:
  connect URL N        -> "ids PATH" (connection ids written to PATH, one per line)
  expect K TIMEOUT     -> "received K' SECONDS" (frames received since the last expect/connect)
  relay M              -> "relay MSGS_PER_S P99_MS" (each socket sends M frames, awaiting each echo)
  sockets SHA1         -> "sockets EXACT MISSING DUPLICATED WRONG": per socket, frames since the last
                          `sockets`/`connect`: exactly one whose SHA-1 is SHA1, none, more than one,
                          or one with other content
  bytes                -> "bytes B P": bytes of the text frames received and how many were parts
                          (docs/large-messages.md), since the last `bytes`

A message sent as parts counts as one frame (for `expect` and `sockets`) once its last part is
in: its SHA-1 is the whole message's, hashed part by part as they arrive in order.
  close                -> "closed"
"""

import asyncio
import hashlib
import json
import sys
import tempfile
import time

import aiohttp
from aiohttp import web


class Clients:
    def __init__(self):
        self.ids = []
        self.sockets = []
        self.received = 0
        self.event = asyncio.Event()
        self.expected = None
        self.replies = {}
        self.frames = {}  # socket index -> SHA-1 of every frame it received (not the relay's)
        self.partial = {}  # (socket index, message id) -> SHA-1 of the parts so far
        self.bytes = 0
        self.parts = 0

    async def backend(self, request):
        if request.path.endswith("/connect"):
            self.ids.append(request.headers["connectionId"])
            return web.json_response({})
        if request.path.endswith("/default"):
            return web.Response(body=await request.read())  # echo: two-way relay benchmark
        return web.json_response({})

    async def start_backend(self):
        app = web.Application()
        app.router.add_post("/ws/{route}", self.backend)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    async def reader(self, ws, index):
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                queue = self.replies.get(index)
                if queue is not None:
                    queue.put_nowait(time.perf_counter())
                    continue
                data = msg.data.encode()
                self.bytes += len(data)
                if data.startswith(b"\x1e"):  # a part: hashed into its message's digest
                    self.parts += 1
                    newline = data.index(b"\n")
                    head = json.loads(data[1:newline])
                    digest = self.partial.setdefault((index, head["p"]), hashlib.sha1())
                    digest.update(data[newline + 1 :])
                    if head["i"] < head["n"] - 1:
                        continue
                    sha1 = self.partial.pop((index, head["p"])).hexdigest()
                else:
                    sha1 = hashlib.sha1(data).hexdigest()
                self.received += 1
                self.frames.setdefault(index, []).append(sha1)
                if self.expected is not None and self.received >= self.expected:
                    self.event.set()

    async def connect(self, url, n):
        await self.close()
        self.ids.clear()
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))  # one connection per socket
        semaphore = asyncio.Semaphore(200)

        async def one(index):
            async with semaphore:
                ws = await self.session.ws_connect(url, max_msg_size=0)
                self.sockets.append(ws)
                asyncio.ensure_future(self.reader(ws, index))

        await asyncio.gather(*(one(i) for i in range(n)))
        self.received = 0
        self.frames.clear()
        path = tempfile.mktemp(prefix="ws-bench-ids-")
        with open(path, "w") as f:
            f.write("\n".join(self.ids))
        return path

    async def expect(self, k, timeout):
        self.expected = k
        start = time.perf_counter()
        if self.received < k:
            try:
                await asyncio.wait_for(self.event.wait(), timeout)
            except TimeoutError:
                pass
        got, self.received, self.expected = self.received, 0, None
        self.event.clear()
        return got, time.perf_counter() - start

    async def relay(self, m):
        latencies = []

        async def talk(index, ws):
            queue = self.replies[index] = asyncio.Queue()
            for n in range(m):
                sent = time.perf_counter()
                await ws.send_str(json.dumps({"handler": "echo", "n": n}))
                latencies.append(await asyncio.wait_for(queue.get(), 30) - sent)

        start = time.perf_counter()
        await asyncio.gather(*(talk(i, ws) for i, ws in enumerate(self.sockets)))
        elapsed = time.perf_counter() - start
        self.replies.clear()
        latencies.sort()
        return len(latencies) / elapsed, latencies[int(len(latencies) * 0.99) - 1] * 1000

    def check_sockets(self, sha1):
        exact = missing = duplicated = wrong = 0
        for index in range(len(self.sockets)):
            got = self.frames.get(index, [])
            if not got:
                missing += 1
            elif len(got) > 1:
                duplicated += 1
            elif got[0] != sha1:
                wrong += 1
            else:
                exact += 1
        self.frames.clear()
        return exact, missing, duplicated, wrong

    async def close(self):
        for ws in self.sockets:
            await ws.close()
        self.sockets.clear()
        if getattr(self, "session", None):
            await self.session.close()


async def main():
    clients = Clients()
    port = await clients.start_backend()
    print(f"backend http://127.0.0.1:{port}/ws/", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line:
            break
        command, args = line[0], line[1:]
        if command == "connect":
            print("ids", await clients.connect(args[0], int(args[1])), flush=True)
        elif command == "expect":
            got, seconds = await clients.expect(int(args[0]), float(args[1]))
            print("received", got, f"{seconds:.4f}", flush=True)
        elif command == "relay":
            rate, p99 = await clients.relay(int(args[0]))
            print("relay", f"{rate:.1f}", f"{p99:.2f}", flush=True)
        elif command == "sockets":
            print("sockets", *clients.check_sockets(args[0]), flush=True)
        elif command == "bytes":
            print("bytes", clients.bytes, clients.parts, flush=True)
            clients.bytes = clients.parts = 0
        elif command == "close":
            await clients.close()
            print("closed", flush=True)
            break


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    from django_aws_api_gateway_websockets.eventloop import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main())
