"""The browser client's channel bookkeeping (issue #25: subscribe, unsubscribe, whisper, members,
resubscribe after a reconnect, channel_access_revoked), frame by frame: client_channels.test.mjs
runs the shipped websocket-client.js in Node against a scripted socket (node --test), which
answers exactly as a test says - duplicates, lost answers, nonsense. The same client against the
real server and local gateway: tests/browser/test_channels_in_chromium.py."""

import shutil
from pathlib import Path

import pytest

from ..helpers import run_node_tests


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed (apt-get install npm)")
def test_client_channel_bookkeeping_in_node():
    run_node_tests(Path(__file__).with_name("client_channels.test.mjs"), at_least=15)
