"""Start the demo: Django (runserver) and the local gateway (runwsgateway) together.

Used by `make demo`; Ctrl-C stops both. Ports come from DEMO_DJANGO_PORT / DEMO_GATEWAY_PORT.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    django_port = os.environ.setdefault("DEMO_DJANGO_PORT", "8000")
    gateway_port = os.environ.get("DEMO_GATEWAY_PORT", "8001")
    manage = [sys.executable, str(HERE / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], check=True)
    subprocess.run([*manage, "setupDemo", "--django-url", f"http://127.0.0.1:{django_port}"], check=True)
    processes = [
        subprocess.Popen([*manage, "runwsgateway", f"127.0.0.1:{gateway_port}", "--api", "demo"]),
        subprocess.Popen([*manage, "runserver", f"127.0.0.1:{django_port}", "--noreload"]),
    ]
    print(
        f"\n  Demo running: open http://127.0.0.1:{django_port}/ and log in as demo / demo or staff / staff"
        "\n  (Ctrl-C stops Django and the gateway)\n",
        flush=True,
    )
    try:
        while all(p.poll() is None for p in processes):
            try:
                processes[0].wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
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


if __name__ == "__main__":
    main()
