import argparse
import asyncio
import logging
import signal
import sys
import uuid

from django.core.management.base import BaseCommand, CommandError

from ... import protocol
from ...eventloop import new_event_loop
from ...models import ApiGateway

DEFAULT_ADDRPORT = "127.0.0.1:8001"
DEFAULT_TARGET = "http://127.0.0.1:8000/ws/"


def seconds(value):
    """An argparse type: a positive number of seconds."""
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {value}")
    return number


def milliseconds(value):
    """An argparse type: zero or more milliseconds."""
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more milliseconds, not {value}")
    return number


class Command(BaseCommand):
    help = (
        "Run a local stand-in for AWS API Gateway: a WebSocket server on ws://ADDR:PORT/STAGE that "
        "calls your Django view like API Gateway does, plus the Management API (@connections) on "
        "the same port. Needs the 'local' extra (aiohttp)."
    )

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default=DEFAULT_ADDRPORT, help=f"Default {DEFAULT_ADDRPORT}.")
        parser.add_argument("--target", help=f"Base URL of the WebSocket view. Default: the record's target_base_endpoint, else {DEFAULT_TARGET}.")
        parser.add_argument("--api", help="The ApiGateway record: pk, api_id or api_name. Default: the only record, else a new local one.")
        parser.add_argument("--stage", help="Stage name in the URL. Default: the record's stage_name.")
        parser.add_argument("--management-latency-ms", type=milliseconds, default=0, help="Delay every @connections call (benchmarks).")
        parser.add_argument("--idle-timeout", type=seconds, default=protocol.IDLE_TIMEOUT_SECONDS, help="Seconds (default 600, as AWS).")
        parser.add_argument("--max-lifetime", type=seconds, default=protocol.MAX_CONNECTION_SECONDS, help="Seconds (default 7200, as AWS).")
        parser.add_argument("--two-way", action="store_true", help="Send Django's response to every message back to the sender.")

    def handle(self, *args, **options):
        try:
            from ...gateway import GatewayConfig, LocalGateway
        except ImportError as exc:
            raise CommandError(
                f"The local gateway needs aiohttp: pip install \"django-aws-api-gateway-websockets[local]\" ({exc})"
            )
        host, port = self._parse_addrport(options["addrport"])
        record = self._resolve_record(options["api"])
        try:
            config = GatewayConfig.from_record(
                record,
                # --target is for this run only: the record keeps the URL AWS integrations use.
                target_base_endpoint=options["target"] or record.target_base_endpoint or DEFAULT_TARGET,
                stage=options["stage"],
                management_latency_ms=options["management_latency_ms"],
                idle_timeout=options["idle_timeout"],
                max_lifetime=options["max_lifetime"],
                two_way=options["two_way"],
            )
        except ValueError as exc:
            raise CommandError(str(exc))
        self._configure_logging(options["verbosity"])
        previous_endpoint = record.management_endpoint_url
        endpoint = f"http://{self._reachable(host)}:{port}/{config.stage}"
        # Project code sends through the record's endpoint: point it here while we run.
        ApiGateway.objects.filter(pk=record.pk).update(management_endpoint_url=endpoint)
        self.stdout.write(self._banner(record, config, host, port, endpoint))
        try:
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                runner.run(self._serve(LocalGateway(config), host, port))
        finally:
            ApiGateway.objects.filter(pk=record.pk).update(management_endpoint_url=previous_endpoint)
            self.stdout.write("Local gateway stopped; disconnect events sent.")

    async def _serve(self, gateway, host, port):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await gateway.start(host, port)
        except OSError as exc:
            raise CommandError(f"Cannot listen on {host}:{port}: {exc}")
        await stop.wait()
        await gateway.stop()

    @staticmethod
    def _banner(record, config, host, port, endpoint):
        lines = [
            f"Local API Gateway for record {record.pk} ({record.api_name}, api id {record.api_id})",
            f"  WebSocket:      ws://{Command._reachable(host)}:{port}/{config.stage}",
            f"  Management API: {endpoint}/@connections/{{id}}",
            f"  Integrations:   {config.target_base_endpoint}{{connect,disconnect,default}}",
        ]
        lines += [f"  Route {key}: {route.integration_url}" for key, route in sorted(config.routes.items())]
        lines.append("Quit with CONTROL-C.")
        return "\n".join(lines)

    @staticmethod
    def _parse_addrport(addrport):
        host, _, port = addrport.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise CommandError(f"'{addrport}' is not a port or address:port.")
        return host.strip("[]") or "127.0.0.1", int(port)

    @staticmethod
    def _reachable(host):
        """The address clients use for a listening address (0.0.0.0 is not one)."""
        return {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)

    @staticmethod
    def _resolve_record(api):
        if api:
            lookup = ApiGateway.objects.filter(api_id=api) | ApiGateway.objects.filter(api_name=api)
            if api.isdigit():
                lookup = lookup | ApiGateway.objects.filter(pk=int(api))
            record = lookup.first()
            if record is None:
                raise CommandError(f"No ApiGateway record with pk, api_id or api_name '{api}'.")
            return record
        records = list(ApiGateway.objects.all()[:2])
        if len(records) == 1:
            return records[0]
        if len(records) > 1:
            raise CommandError("Several ApiGateway records exist: choose one with --api.")
        return ApiGateway.objects.create(
            api_name="local", api_id=f"local{uuid.uuid4().hex[:6]}", stage_name="local", region="us-east-1"
        )

    def _configure_logging(self, verbosity):
        log = logging.getLogger("django_aws_api_gateway_websockets.gateway")
        if not log.handlers:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
            log.addHandler(handler)
            log.propagate = False
        log.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))
