"""The browser client's large messages (issue #26, docs/large-messages.md), frame by frame:
client_parts.test.mjs runs the shipped websocket-client.js in Node against a scripted socket
(node --test): the page's own sends split into parts that each fit a 32 KB frame (UTF-8 bytes),
the server's parts reassembled all-or-nothing (out of order, repeated, missing, interleaved,
contradicting, cut by a reconnect). The same client against the real server and local gateway:
tests/browser/test_large_messages_in_chromium.py."""

import shutil
from pathlib import Path

import pytest

from ..helpers import run_node_tests


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed (apt-get install npm)")
def test_client_splits_and_reassembles_large_messages_in_node():
    run_node_tests(Path(__file__).with_name("client_parts.test.mjs"), at_least=19)
