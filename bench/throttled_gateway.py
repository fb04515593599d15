"""``manage.py runwsgateway`` with another account-level throttle than AWS's default.

The local gateway enforces AWS's ``@connections`` throttle (10,000 calls/s, bursts of 5,000).
On a 2-core machine that also runs the senders and 10,000 client sockets, the machine is
slower than that throttle, so a multi-worker broadcast is bound by CPU, not by the throttle.
To see how close to the throttle's ideal time the worker processes get when the throttle *is*
the limit, bench/run.py also runs the gateway with a lower one (``BENCH_GW_RATE``/
``BENCH_GW_BURST``, default 2,000/s and 1,000): the real command, its config given these two
values (a bench-only wrapper; the command has no option for them).

    python bench/throttled_gateway.py RATE BURST <runwsgateway arguments>
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from django_aws_api_gateway_websockets.gateway.config import GatewayConfig  # noqa: E402

rate, burst, *arguments = sys.argv[1:]
original = GatewayConfig.from_record.__func__


def from_record(cls, record, **overrides):
    overrides.update(management_rate_limit=float(rate), management_burst_limit=int(burst))
    return original(cls, record, **overrides)


GatewayConfig.from_record = classmethod(from_record)
call_command("runwsgateway", *arguments)
