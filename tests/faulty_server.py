"""A misbehaving Management API endpoint over raw sockets (HTTP or TLS), and an HTTP proxy.

The connection id in ``POST /<stage>/@connections/<id>`` picks the behaviour (the part before
the first ``-``); every request whose body arrived in full is counted in ``posts[id]``, so a
test can prove that nothing was sent twice:

``ok``         200, Content-Length
``chunked``    200, chunked body with a chunk extension and trailers
``gonechunked`` 410 GoneException, chunked
``truncate``   a 200 head promising 50 bytes, 5 sent, then the connection closes
``truncatehead`` half a status line, then the connection closes
``reset``      the connection is reset (RST) after the request was read
``stall``      the request is read, no answer ever
``bigheaders`` a 200 whose header block is 256 KB
``throttle<N>`` 429 LimitExceededException for the first N calls, then 200
``e500`` / ``e502`` / ``e503once`` 500 / 502 always / 503 once then 200
``closeafter`` 200 with ``Connection: close``
"""

import datetime
import ipaddress
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from urllib.parse import unquote, urlsplit


def make_ca_and_server_cert(directory):
    """``(ca_file, cert_file, key_file)``: a private CA and a certificate for 127.0.0.1/localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (directory / name for name in ("ca.pem", "server.pem", "server.key"))
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_file, cert_file, key_file


def _read_request(conn, buffer):
    """``(method, path, headers, body, rest)`` of the next request, or ``None`` at EOF."""
    while b"\r\n\r\n" not in buffer:
        data = conn.recv(65536)
        if not data:
            return None
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", 0))
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            return None
        rest += data
    return method, urlsplit(target).path, headers, rest[:length], rest[length:]


def _answer(status, reason, headers=(), body=b""):
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
    if not any(k.lower() == "transfer-encoding" for k, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _error(status, reason, code):
    body = b'{"message":"%s"}' % code.encode()
    return _answer(status, reason, [("x-amzn-ErrorType", code), ("Content-Type", "application/json")], body)


class _AcceptLoop:
    """A listening socket on 127.0.0.1 and a thread handing each connection to ``_handle``."""

    def __init__(self, backlog):
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        raise NotImplementedError


class FaultyServer(_AcceptLoop):
    """A threaded raw-socket server; ``tls=(cert_file, key_file)`` wraps it in TLS."""

    def __init__(self, tls=None, stage="prod"):
        super().__init__(backlog=256)
        self.posts = Counter()
        self.headers = {}  # connection id -> the last request's headers
        self.lock = threading.Lock()
        self.context = None
        if tls:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(*tls)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}/{stage}"

    def _handle(self, conn):
        try:
            if self.context is not None:
                conn.settimeout(10)
                conn = self.context.wrap_socket(conn, server_side=True)
            conn.settimeout(30)
            buffer = b""
            while not self.stop.is_set():
                request = _read_request(conn, buffer)
                if request is None:
                    return
                method, path, headers, body, buffer = request
                cid = unquote(path.split("/@connections/", 1)[1])
                with self.lock:
                    self.posts[cid] += 1
                    calls = self.posts[cid]
                    self.headers[cid] = headers
                if not self._respond(conn, cid, calls):
                    return
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _respond(self, conn, cid, calls):
        """Answer one request; False: the connection is finished."""
        kind = cid.split("-", 1)[0]
        if kind == "ok":
            conn.sendall(_answer(200, "OK"))
        elif kind == "chunked":
            conn.sendall(
                _answer(200, "OK", [("Transfer-Encoding", "chunked"), ("Trailer", "X-Checksum")])
                + b"2;ext=1\r\n{}\r\n0\r\nX-Checksum: abc\r\n\r\n"
            )
        elif kind == "gonechunked":
            conn.sendall(
                _answer(410, "Gone", [("Transfer-Encoding", "chunked"), ("x-amzn-ErrorType", "GoneException")])
                + b'14\r\n{"message":"Gone!!"}\r\n0\r\n\r\n'
            )
        elif kind == "truncate":
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"mes')
            return False
        elif kind == "truncatehead":
            conn.sendall(b"HTTP/1.1 20")
            return False
        elif kind == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        elif kind == "stall":
            self.stop.wait(60)
            return False
        elif kind == "bigheaders":
            conn.sendall(_answer(200, "OK", [(f"X-Filler-{i}", "x" * 1000) for i in range(256)]))
        elif kind.startswith("throttle"):
            if calls <= int(kind[len("throttle") :]):
                conn.sendall(_error(429, "Too Many Requests", "LimitExceededException"))
            else:
                conn.sendall(_answer(200, "OK"))
        elif kind == "e500":
            conn.sendall(_error(500, "Internal Server Error", "InternalServerErrorException"))
        elif kind == "e502":
            conn.sendall(_answer(502, "Bad Gateway"))
        elif kind == "e503once":
            if calls == 1:
                conn.sendall(_error(503, "Service Unavailable", "ServiceUnavailable"))
            else:
                conn.sendall(_answer(200, "OK"))
        elif kind == "closeafter":
            conn.sendall(_answer(200, "OK", [("Connection", "close")]))
            return False
        else:
            conn.sendall(_answer(404, "Not Found"))
        return True


class Blackhole:
    """A port whose TCP handshakes never complete (``tls=False``: the accept queue is full and
    further SYNs are dropped) or never answer the TLS ClientHello (``tls=True``)."""

    def __init__(self, tls=False):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        self.accepted = []
        self.tls = tls
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}/prod"

    def __enter__(self):
        if self.tls:
            self.sock.listen(64)
            self.sock.settimeout(0.2)
            self.stop = threading.Event()

            def accept():  # accept and hold: the handshake never gets an answer
                while not self.stop.is_set():
                    try:
                        self.accepted.append(self.sock.accept()[0])
                    except OSError:
                        continue

            self.thread = threading.Thread(target=accept, daemon=True)
            self.thread.start()
        else:
            self.sock.listen(0)
            for _ in range(4):  # fill the accept queue: later SYNs are dropped
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", self.port))
                self.fillers.append(filler)
            time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        if self.tls:
            self.stop.set()
            self.thread.join(5)
        for s in self.fillers + self.accepted:
            s.close()
        self.sock.close()


class Proxy(_AcceptLoop):
    """An HTTP proxy: ``CONNECT host:port`` tunnels (https) and absolute-URI requests (http)."""

    def __init__(self):
        super().__init__(backlog=64)
        self.connects = []  # CONNECT targets
        self.forwarded = []  # absolute URIs of plain requests
        self.url = f"http://127.0.0.1:{self.port}"

    def _handle(self, conn):
        try:
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            first = buffer.split(b"\r\n", 1)[0].decode()
            method, target, _ = first.split(" ", 2)
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                self.connects.append(target)
                upstream = socket.create_connection((host, int(port)))
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                rest = buffer.partition(b"\r\n\r\n")[2]
                if rest:
                    upstream.sendall(rest)
            else:
                parts = urlsplit(target)
                self.forwarded.append(target)
                upstream = socket.create_connection((parts.hostname, parts.port or 80))
                upstream.sendall(buffer)  # the absolute URI is fine for the test server
            self._pipe(conn, upstream)
        except OSError:
            pass
        finally:
            conn.close()

    def _pipe(self, a, b):
        def copy(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        other = threading.Thread(target=copy, args=(b, a), daemon=True)
        other.start()
        copy(a, b)
        other.join(30)
        b.close()
