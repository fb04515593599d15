"""Start the demo: Django (runserver) and the local gateway (runwsgateway) together.

Used by `make demo`; Ctrl-C stops both. Ports come from DEMO_DJANGO_PORT / DEMO_GATEWAY_PORT.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def busy(port):
    """True when something already listens on 127.0.0.1:port (or it cannot be bound)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def check_ports(django_port, gateway_port):
    """Refuse, before migrating or printing any banner, ports that are taken or invalid."""
    problems = []
    for name, value in (("DEMO_DJANGO_PORT", django_port), ("DEMO_GATEWAY_PORT", gateway_port)):
        if not value.isdigit() or not 0 < int(value) < 65536:
            problems.append(f"{name}={value!r} is not a port number")
        elif busy(int(value)):
            problems.append(
                f"port {value} on 127.0.0.1 is already in use (another demo or runserver?): stop it, or pick another "
                f"port, e.g. {name}={int(value) + 10} make demo"
            )
    if django_port == gateway_port:
        problems.append("DEMO_DJANGO_PORT and DEMO_GATEWAY_PORT must differ")
    if problems:
        sys.stderr.write("".join(f"make demo: {problem}\n" for problem in problems))
        sys.exit(2)


def relay(process, banner_done, lock):
    """Copy a server's output to ours, line by line; ``banner_done`` is set at its banner's last
    line ("... CONTROL-C."), which both servers print once they listen (or when it ends)."""
    for line in process.stdout:
        with lock:
            sys.stdout.write(line)
            sys.stdout.flush()
        if "CONTROL-C" in line:
            banner_done.set()
    banner_done.set()


def wait_for_banners(processes, events, timeout=60):
    """True once every server printed its banner; False if one stopped first (or too slow)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            return False
        if all(event.wait(0.1) for event in events):
            return all(p.poll() is None for p in processes)
    return False


def main():
    django_port = os.environ.setdefault("DEMO_DJANGO_PORT", "8000")
    gateway_port = os.environ.get("DEMO_GATEWAY_PORT", "8001")
    check_ports(django_port, gateway_port)
    if "--check-ports" in sys.argv[1:]:  # `make demo` asks first, before building the virtualenv
        return 0
    manage = [sys.executable, str(HERE / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], check=True)
    subprocess.run([*manage, "setupDemo", "--django-url", f"http://127.0.0.1:{django_port}"], check=True)
    # Their output comes through us, unbuffered: the URL is printed after both banners (printed
    # first, they scrolled it away).
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    pipe = {"stdout": subprocess.PIPE, "text": True, "env": env}
    processes = [
        subprocess.Popen([*manage, "runwsgateway", f"127.0.0.1:{gateway_port}", "--api", "demo"], **pipe),
        subprocess.Popen([*manage, "runserver", f"127.0.0.1:{django_port}", "--noreload"], **pipe),
    ]
    banners, lock = [threading.Event() for _ in processes], threading.Lock()
    for process, banner in zip(processes, banners, strict=True):
        threading.Thread(target=relay, args=(process, banner, lock), daemon=True).start()
    status = 0
    try:
        if wait_for_banners(processes, banners):
            with lock:
                print(
                    f"\n  Demo running: open http://127.0.0.1:{django_port}/ and log in as demo / demo or staff / staff"
                    "\n  (Ctrl-C stops Django and the gateway)\n",
                    flush=True,
                )
        while all(p.poll() is None for p in processes):
            try:
                processes[0].wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
        dead = [p for p in processes if p.poll() is not None]
        if dead:  # a server that stops on its own (its port taken meanwhile, a crash) fails the demo
            status = dead[0].returncode or 1
            sys.stderr.write(f"make demo: {' '.join(dead[0].args[2:4])} stopped (exit status {dead[0].returncode})\n")
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
    return status


if __name__ == "__main__":
    sys.exit(main())
