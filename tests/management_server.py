"""A real HTTP server speaking the Management API's wire format, with scripted failures.

Connection ids decide the answer: ``gone-*`` -> 410 GoneException, ``forbidden-*`` -> 403,
``throttle<N>-*`` -> 429 LimitExceededException for the first N calls, else 200.
"""

import json
import threading
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


class ManagementServer:
    def __init__(self):
        self.received = defaultdict(list)
        self.deleted = []
        self.calls = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, status, error=None):
                body = json.dumps({"message": error}).encode() if error else b""
                self.send_response(status)
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _connection_id(self):
                return unquote(self.path.split("/@connections/", 1)[1])

            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                cid = self._connection_id()
                with server.lock:
                    server.calls[cid] += 1
                    calls = server.calls[cid]
                if cid.startswith("gone"):
                    return self._answer(410, "GoneException")
                if cid.startswith("forbidden"):
                    return self._answer(403, "ForbiddenException")
                if cid.startswith("throttle"):
                    limit = int(cid[len("throttle") : cid.index("-")])
                    if calls <= limit:
                        return self._answer(429, "LimitExceededException")
                try:
                    message = json.loads(data)
                except ValueError:
                    message = data.decode()
                with server.lock:
                    server.received[cid].append(message)
                self._answer(200)

            def do_DELETE(self):
                cid = self._connection_id()
                if cid.startswith("gone"):
                    return self._answer(410, "GoneException")
                server.deleted.append(cid)
                self._answer(204)

        class Server(ThreadingHTTPServer):
            request_queue_size = 512  # many connections opened at once (fan-out of 128)

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/production"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
