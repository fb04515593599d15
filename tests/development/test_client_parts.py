"""The browser client's large messages (issue #26, docs/large-messages.md), frame by frame:
client_parts.test.mjs runs the shipped websocket-client.js in Node against a scripted socket
(node --test): the page's own sends split into parts that each fit a 32 KB frame (UTF-8 bytes),
the server's parts reassembled all-or-nothing (out of order, repeated, missing, interleaved,
contradicting, cut by a reconnect). The same client against the real server and local gateway:
tests/browser/test_large_messages_in_chromium.py."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import django_aws_api_gateway_websockets

# The installed package's copy (nox runs the tests against the wheel, without a source tree).
STATIC = Path(django_aws_api_gateway_websockets.__file__).parent / "static" / "django_aws_api_gateway_websockets"
CLIENT_JS = STATIC / "websocket-client.js"
TESTS = Path(__file__).with_name("client_parts.test.mjs")


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed (apt-get install npm)")
def test_client_splits_and_reassembles_large_messages_in_node():
    done = subprocess.run(
        ["node", "--disable-warning=MODULE_TYPELESS_PACKAGE_JSON", "--test", "--test-reporter=spec", str(TESTS)],
        env={**os.environ, "CLIENT_JS": CLIENT_JS.as_uri(), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    passed = re.search(r"\bpass (\d+)", report)
    assert passed and int(passed.group(1)) >= 19, report
    assert re.search(r"\bfail 0\b", report), report
