"""The upstream 4.1.0 release's own send_message, measured in the same run (bench/run.py).

4.1.0 is installed in its own virtualenv (``tests/upgrade/legacy_wheels/builder.py``: the wheel from the
package index, with the Django it declares); ``legacy41_harness.py`` runs there. Both packages
send to the same open sockets through the same local gateway with the same injected latency.
"""

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = {"type": "bench-41", "text": "z" * 64}


def measure(clients, ids, endpoint_url):
    """``{"upstream_41_send_*": ...}`` for 4.1.0 sending to ``ids`` (sockets open in ``clients``)."""
    sys.path.insert(0, str(ROOT))
    from tests.upgrade.legacy_wheels import builder

    python = builder.ensure_venv("4.1.0")
    ids_file = Path(tempfile.mktemp(prefix="ws-bench-41-ids-"))
    ids_file.write_text("\n".join(ids))
    harness = subprocess.Popen(
        [str(python), str(ROOT / "bench" / "legacy41_harness.py"), str(ids_file), endpoint_url, json.dumps(PAYLOAD)],
        cwd=ROOT,
        env=builder.clean_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        warm = int(harness.stdout.readline().split()[1])
        clients.ask(f"expect {warm} 30")
        clients.ask("sockets 0")  # forget the warm frames
        harness.stdin.write("go\n")
        harness.stdin.flush()
        outcome = json.loads(harness.stdout.readline())
    finally:
        harness.wait(timeout=60)
    received = int(clients.ask(f"expect {len(ids)} 60")[1])
    # 4.1.0 serialises with json.dumps (", " and ": " separators).
    sha1 = hashlib.sha1(json.dumps(PAYLOAD).encode()).hexdigest()
    exact, missing, duplicated, wrong = map(int, clients.ask(f"sockets {sha1}")[1:])
    return {
        "upstream_41_send_sockets": len(ids),
        "upstream_41_send_seconds": outcome["seconds"],
        "upstream_41_send_sender_cpu_seconds": outcome["cpu_seconds"],
        "upstream_41_send_exactly_once": exact,
        "upstream_41_send_received": received,
        "upstream_41_send_sockets_duplicated_wrong": [duplicated, wrong],
    }
