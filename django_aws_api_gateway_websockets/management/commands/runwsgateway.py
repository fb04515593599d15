import argparse
import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils.module_loading import import_string

from ... import protocol
from ...eventloop import new_event_loop
from ...models import ApiGateway, IntegrationType

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
        parser.add_argument(
            "--target",
            help=f"Base URL of the WebSocket view. Default: the record's target_base_endpoint, else {DEFAULT_TARGET}.",
        )
        parser.add_argument(
            "--api",
            help="The ApiGateway record: pk, api_id or api_name. Default: the only record, else a new local one.",
        )
        parser.add_argument("--stage", help="Stage name in the URL. Default: the record's stage_name.")
        parser.add_argument(
            "--management-latency-ms", type=milliseconds, default=0, help="Delay every @connections call (benchmarks)."
        )
        parser.add_argument(
            "--idle-timeout", type=seconds, default=protocol.IDLE_TIMEOUT_SECONDS, help="Seconds (default 600, as AWS)."
        )
        parser.add_argument(
            "--max-lifetime",
            type=seconds,
            default=protocol.MAX_CONNECTION_SECONDS,
            help="Seconds (default 7200, as AWS).",
        )
        parser.add_argument(
            "--integration-timeout",
            type=seconds,
            default=protocol.INTEGRATION_TIMEOUT_SECONDS,
            help="Seconds for a whole integration call to Django (default 29, as AWS).",
        )
        parser.add_argument(
            "--two-way", action="store_true", help="Send Django's response to every message back to the sender."
        )
        parser.add_argument(
            "--lambda",
            dest="lambda_handler",
            metavar="DOTTED.PATH",
            help="Play the Lambda proxy integration (AWS_PROXY): call this handler (e.g. "
            "django_aws_api_gateway_websockets.aws_lambda.handler) in-process with the events AWS builds, "
            "instead of POSTing to --target.",
        )

    def handle(self, *args, **options):
        try:
            from ...gateway import GatewayConfig, LocalGateway, records
        except ImportError as exc:
            raise CommandError(
                f'The local gateway needs aiohttp: pip install "django-aws-api-gateway-websockets[local]" ({exc})'
            ) from exc
        host, port = self._parse_addrport(options["addrport"])
        try:
            record, chosen = self._resolve_record(options["api"])
        except DatabaseError as exc:  # most often: migrate was never run
            raise CommandError(f"Cannot read the ApiGateway records ({exc}). Run `manage.py migrate` first.") from exc
        if not records.is_local_record(record):  # _resolve_record never returns one: never write it
            raise CommandError(f"ApiGateway '{record.api_name}' exists in AWS: runwsgateway does not write to it.")
        handler = self._lambda_handler(options["lambda_handler"])
        try:
            config = GatewayConfig.from_record(
                record,
                # --target is for this run only: the record keeps the URL AWS integrations use.
                target_base_endpoint=options["target"] or record.target_base_endpoint or DEFAULT_TARGET,
                stage=options["stage"],
                # A companion plays its AWS record's routes (read, never written).
                routes=self._routes(chosen) if chosen is not record else None,
                management_latency_ms=options["management_latency_ms"],
                idle_timeout=options["idle_timeout"],
                max_lifetime=options["max_lifetime"],
                integration_timeout=options["integration_timeout"],
                two_way=options["two_way"],
                lambda_handler=handler,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self._configure_logging(options["verbosity"])
        for warning in self._warnings(host):
            self.stderr.write(warning)
        with asyncio.Runner(loop_factory=new_event_loop) as runner, self._stop_on_signals(runner.get_loop()) as stop:
            gateway = LocalGateway(config)
            try:
                # Listen first: a busy port is an error before anything is written or announced.
                port = runner.run(gateway.start(host, port))
            except OSError as exc:
                hint = ""
                if exc.errno == errno.EADDRINUSE:
                    other = str(port + 1) if host == "127.0.0.1" else f"{host}:{port + 1}"
                    hint = (
                        ". Another runwsgateway or `make demo` is running: stop it or pass another port"
                        f" (manage.py runwsgateway {other})"
                    )
                raise CommandError(f"Cannot listen on {host}:{port}: {exc}{hint}") from exc
            previous_endpoint = record.management_endpoint_url
            endpoint = f"http://{self._reachable(host)}:{port}/{config.stage}"
            for line in self._takeover(record, previous_endpoint, endpoint):
                self.stderr.write(line)
            try:
                # Project code sends through the record's endpoint: point it here while we run.
                # (Always a local record: an AWS record is played by its companion, never written.)
                # --lambda: the record integrates through Lambda while we run (the events' trust
                # is only an AWS_PROXY record's; local records only, restored below).
                ApiGateway.objects.filter(pk=record.pk).update(
                    management_endpoint_url=endpoint,
                    integration_type=IntegrationType.AWS_PROXY if handler else record.integration_type,
                )
                self.stdout.write(self._banner(record, chosen, config, host, port, endpoint))
                runner.run(self._serve(gateway, stop))
            finally:
                try:
                    runner.run(gateway.stop())  # closes the sockets and sends their $disconnect
                finally:
                    ApiGateway.objects.filter(pk=record.pk).update(
                        management_endpoint_url=previous_endpoint, integration_type=record.integration_type
                    )
                    self.stdout.write("Local gateway stopped; disconnect events sent.")

    @staticmethod
    @contextlib.contextmanager
    def _stop_on_signals(loop):
        """An event set by SIGINT or SIGTERM, whenever they come: also between two ``runner.run``
        calls, when the loop is not running (its own signal handlers would miss them)."""
        stop = asyncio.Event()

        def handler(signum, frame):
            loop.call_soon_threadsafe(stop.set)

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield stop
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    @staticmethod
    async def _serve(gateway, stop):
        """Until SIGINT or SIGTERM."""
        await stop.wait()

    @staticmethod
    def _warnings(host):
        """Loud lines for stderr: the Management API has no authentication."""
        from ...gateway.records import is_loopback_host

        risks = []
        if not is_loopback_host(host):
            risks.append(f"it listens on {host}, which other machines can reach")
        if not settings.DEBUG:
            risks.append("settings.DEBUG is False (is this a deployed site?)")
        if not risks:
            return []
        bar = "!" * 78
        return [
            bar,
            f"WARNING: the local gateway is a development tool, and {' and '.join(risks)}.",
            "Its Management API (@connections) has NO authentication: anyone who can reach this port",
            "can send to, inspect or close any connection. Listen on 127.0.0.1 unless you must.",
            bar,
        ]

    @staticmethod
    def _takeover(record, previous, endpoint):
        """A second runwsgateway for the record takes it over from a first one that still runs
        (sends follow the record's endpoint): say so, and which process serves it now."""
        from ...gateway.records import is_loopback_host

        if not previous or previous == endpoint:
            return []
        parsed = urlsplit(previous)
        if not parsed.hostname or not parsed.port or not is_loopback_host(parsed.hostname):
            return []
        try:  # a gateway that was killed left its URL behind: nothing to take over
            socket.create_connection((parsed.hostname, parsed.port), timeout=0.5).close()
        except OSError:
            return []
        return [
            f"Record {record.pk} ({record.api_name}) was served by another local gateway, still running at "
            f"{previous}: this process (pid {os.getpid()}) serves it from now on. Django's sends reach only "
            f"the sockets opened here; pages connected to the other one no longer receive them. On exit, "
            f"the record goes back to {previous}."
        ]

    @staticmethod
    def _banner(record, chosen, config, host, port, endpoint):
        lines = [
            f"Local API Gateway for record {record.pk} ({record.api_name}, api id {record.api_id}),"
            f" served by this process (pid {os.getpid()})"
        ]
        if chosen is not record:
            lines.append(
                f"  Record {chosen.pk} ({chosen.api_name}) exists in AWS and is left untouched: its local "
                f"companion {record.api_name} plays it (sessions opened here belong to the companion)."
            )
        lines += [
            f"  WebSocket:      ws://{Command._reachable(host)}:{port}/{config.stage}",
            f"  Management API: {endpoint}/@connections/{{id}}",
            f"  Integrations:   {config.target_base_endpoint}{{connect,disconnect,default}}"
            if config.lambda_handler is None
            else "  Integrations:   AWS_PROXY: the Lambda handler, called in-process with API Gateway's events",
        ]
        lines += [f"  Route {key}: {route.integration_url}" for key, route in sorted(config.routes.items())]
        lines.append("Quit with CONTROL-C.")
        return "\n".join(lines)

    @staticmethod
    def _lambda_handler(path):
        """``--lambda``'s handler, imported (``None`` without the option)."""
        if not path:
            return None
        try:
            handler = import_string(path)
        except ImportError as exc:
            raise CommandError(f"--lambda {path}: cannot import it ({exc}).") from exc
        if not callable(handler):
            raise CommandError(f"--lambda {path} is not callable: point it at handler(event, context).")
        return handler

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
    def _routes(record):
        from ...gateway import Route

        return {r.route_key: Route(r.integration_url, r.two_way) for r in record.additional_routes.all()}

    @staticmethod
    def _resolve_record(api):
        """``(served, chosen)``: the record to play, and the local record that plays it (the same
        record when it is local; its companion when it exists in AWS)."""
        from ...gateway import records

        if api:
            lookup = ApiGateway.objects.filter(api_id=api) | ApiGateway.objects.filter(api_name=api)
            if api.isdigit():
                lookup = lookup | ApiGateway.objects.filter(pk=int(api))
            chosen = lookup.order_by("pk").first()
            if chosen is None:
                raise CommandError(f"No ApiGateway record with pk, api_id or api_name '{api}'.")
        else:
            existing = list(ApiGateway.objects.order_by("pk"))
            # A companion made by an earlier run is not a choice of its own.
            companions = {records.companion_name(r) for r in existing if not records.is_local_record(r)}
            existing = [r for r in existing if not (r.api_name in companions and records.is_local_record(r))]
            if len(existing) > 1:
                raise CommandError("Several ApiGateway records exist: choose one with --api.")
            if not existing:
                record = ApiGateway.objects.create(
                    api_name="local",
                    api_id=records.new_local_api_id(),
                    stage_name="local",
                    region=records.local_region(),
                )
                return record, record
            chosen = existing[0]
        if records.is_local_record(chosen):
            return chosen, chosen
        try:
            companion, _ = records.get_or_create_companion(chosen)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        return companion, chosen

    def _configure_logging(self, verbosity):
        log = logging.getLogger("django_aws_api_gateway_websockets.gateway")
        if not log.handlers:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
            log.addHandler(handler)
            log.propagate = False
        log.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))
