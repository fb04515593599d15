"""The fan-out's HTTP/1.1 client against real sockets: framing, keep-alive, TLS."""

import asyncio
import ssl
import subprocess

import pytest

from django_aws_api_gateway_websockets.http11 import HTTP11Client, ResponseError


async def serve(responses, ssl_context=None, close_after_each=False):
    """A server answering requests, in order, with the raw ``responses``; records connections."""
    state = {"connections": 0, "requests": [], "writers": []}

    async def handle(reader, writer):
        state["connections"] += 1
        state["writers"].append(writer)
        while True:
            head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
            if not head:
                break
            length = int(next(l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")).split(b":")[1])
            body = await reader.readexactly(length)
            state["requests"].append((head.split(b"\r\n")[0].decode(), body))
            response = responses.pop(0)
            writer.write(response)
            await writer.drain()
            if close_after_each or b"Connection: close" in response:
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)
    return server, server.sockets[0].getsockname()[1], state


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
GONE = b'HTTP/1.1 410 Gone\r\nx-amzn-ErrorType: GoneException\r\nContent-Length: 13\r\n\r\n{"message":1}'


async def test_keep_alive_reuses_one_connection_and_reads_errors():
    server, port, state = await serve([OK, GONE, OK])
    client = HTTP11Client(asyncio.get_running_loop())
    statuses = [await client.post("http", "127.0.0.1", port, f"/s/@connections/c{i}", {"X-A": "1"}, b"{}") for i in range(3)]
    assert [s for s, _ in statuses] == [200, 410, 200]
    assert statuses[1][1]["x-amzn-errortype"] == "GoneException"
    assert state["connections"] == 1
    assert state["requests"][0] == ("POST /s/@connections/c0 HTTP/1.1", b"{}")
    client.close()
    server.close()


async def test_chunked_and_connection_close_framing():
    chunked = b"HTTP/1.1 429 Too Many\r\nTransfer-Encoding: chunked\r\nx-amzn-ErrorType: LimitExceededException\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    closing = b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\nno"
    server, port, state = await serve([chunked, closing, OK])
    client = HTTP11Client(asyncio.get_running_loop())
    assert (await client.post("http", "127.0.0.1", port, "/a", {}, b"x"))[0] == 429
    assert (await client.post("http", "127.0.0.1", port, "/a", {}, b"x"))[0] == 403
    assert (await client.post("http", "127.0.0.1", port, "/a", {}, b"x"))[0] == 200
    assert state["connections"] == 2  # a new connection after "Connection: close"
    server.close()


async def test_a_stale_keep_alive_connection_is_retried_on_a_fresh_one():
    server, port, state = await serve([OK, OK], close_after_each=True)
    client = HTTP11Client(asyncio.get_running_loop())
    assert (await client.post("http", "127.0.0.1", port, "/a", {}, b"1"))[0] == 200
    await asyncio.sleep(0.05)  # the server has closed the idle connection
    assert (await client.post("http", "127.0.0.1", port, "/a", {}, b"2"))[0] == 200
    assert state["connections"] == 2
    server.close()


async def test_garbage_is_an_error_not_a_hang():
    server, port, _ = await serve([b"SSH-2.0-OpenSSH\r\n\r\n"])
    client = HTTP11Client(asyncio.get_running_loop(), timeout=5)
    with pytest.raises(ResponseError):
        await client.post("http", "127.0.0.1", port, "/a", {}, b"x")
    server.close()


async def test_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    server, port, state = await serve([OK, OK], ssl_context=server_context)
    client = HTTP11Client(asyncio.get_running_loop())
    with pytest.raises(ssl.SSLCertVerificationError):  # the system trust store does not know it
        await client.post("https", "127.0.0.1", port, "/a", {}, b"x")
    client.ssl_context = ssl.create_default_context(cafile=str(cert))
    assert (await client.post("https", "127.0.0.1", port, "/a", {}, b"x"))[0] == 200
    server.close()


async def test_a_restarted_server_costs_no_request():
    # Many idle keep-alive connections, then the server goes away (the local gateway restarted).
    server, port, state = await serve([OK] * 8)
    client = HTTP11Client(asyncio.get_running_loop())
    await asyncio.gather(*(client.post("http", "127.0.0.1", port, "/a", {}, b"x") for _ in range(4)))
    idle = len(client.idle["http", "127.0.0.1", port])
    assert idle >= 2
    for writer in state["writers"]:
        writer.close()  # the server side closes every connection
    await asyncio.sleep(0.05)
    results = await asyncio.gather(*(client.post("http", "127.0.0.1", port, "/a", {}, b"x") for _ in range(4)))
    assert [status for status, _ in results] == [200] * 4
    assert state["connections"] > idle  # new connections replaced the stale ones
    client.close()
    server.close()
