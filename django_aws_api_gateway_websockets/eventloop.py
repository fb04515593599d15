"""The event loops the package starts (the fan-out transport, the local gateway)."""

import asyncio

try:
    import uvloop
except ImportError:  # Windows, or not installed: asyncio's own loop
    uvloop = None


def new_event_loop():
    """uvloop's loop when installed (much less CPU per request for aiohttp), else asyncio's."""
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()
