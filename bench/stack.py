"""The processes of a benchmark's stack, as in production: the local gateway (``runwsgateway``
playing API Gateway) and ``bench/clients.py`` holding the browsers' sockets. Used by
bench/run.py and bench/history.py; Django must be set up by the caller (the socket rows)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


GATEWAY_PORT = free_port()
CORES = os.cpu_count() or 1


def cpu_seconds(pid):
    """User + system CPU seconds used so far by process ``pid`` and its descendants (Linux /proc;
    descendants still running: a benchmark reads it before and after a phase)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            kids = task.read_text().split()
        except OSError:  # the thread ended meanwhile
            continue
        total += sum(cpu_seconds(int(child)) for child in kids)
    return total


class CpuMeter:
    """CPU seconds each named process tree uses between ``start()`` and ``stop()``, and the least
    wall time this machine's cores allow for that much work (``bound_seconds``): when it is near
    the measured time, the machine, not the code measured, sets the pace."""

    def __init__(self, own=None, **pids):
        self.own, self.pids = own, pids  # ``own``: a name for this process (its threads, no children)

    def _read(self):
        read = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        if self.own:
            read[self.own] = time.process_time()
        return read

    def start(self):
        self.before = self._read()
        return self

    def stop(self):
        after = self._read()
        self.used = {name: after[name] - self.before[name] for name in after}
        return self

    @property
    def bound_seconds(self):
        return sum(self.used.values()) / CORES


class Process:
    """A Python child speaking a line protocol on stdin/stdout."""

    def __init__(self, *args, env=None):
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().split()

    def read_until(self, marker):
        for line in self.proc.stdout:
            if marker in line:
                return line
        raise RuntimeError(f"process ended before printing {marker!r}")

    def stop(self, interrupt=True):
        if interrupt and self.proc.poll() is None:
            self.proc.send_signal(2)
        self.proc.wait(timeout=60)


def start_clients():
    """``bench/clients.py`` and the URL of its stand-in backend (it accepts every ``$connect``)."""
    clients = Process(str(ROOT / "bench" / "clients.py"))
    return clients, clients.proc.stdout.readline().split()[1]


def start_gateway(record, backend, *flags, command=("-m", "django", "runwsgateway")):
    """The gateway for ``record`` on ``GATEWAY_PORT``, integrating with ``backend``: by default
    ``runwsgateway``; ``command`` is another (a gateway of the bench's own with its arguments
    before the address). Returns once it listens."""
    gateway = Process(
        *command,
        f"127.0.0.1:{GATEWAY_PORT}",
        "--api",
        record.api_name,
        "--target",
        backend,
        "-v0",
        *flags,
        env={"PYTHONPATH": str(ROOT)},
    )
    gateway.read_until("Quit with CONTROL-C")
    time.sleep(0.3)
    return gateway


def open_sockets(clients, record, n, channel="all"):
    """``n`` sockets opened by the clients through the gateway, each with its connection row in
    ``channel`` (the rows the backend's ``$connect`` would write); returns their ids."""
    from django_aws_api_gateway_websockets.models import WebSocketSession

    ids_path = clients.ask(f"connect ws://127.0.0.1:{GATEWAY_PORT}/{record.stage_name} {n}")[1]
    ids = Path(ids_path).read_text().split()
    WebSocketSession.objects.all().delete()
    WebSocketSession.objects.bulk_create(
        [WebSocketSession(connection_id=cid, channel_name=channel, api_gateway=record) for cid in ids], batch_size=1000
    )
    record.refresh_from_db()
    return ids
