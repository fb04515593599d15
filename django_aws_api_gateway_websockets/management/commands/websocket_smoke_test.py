"""The deployment guide's smoke test, automated: one PASS/FAIL line per step, exit 1 on failure.

It runs where Django runs (same database and AWS credentials) and plays the browser with a
real WebSocket client: token, connect, session row, message, server->client message, channel
broadcast, disconnect, cleanup. After the first failure the remaining steps are skipped.
"""

import json
import time
import uuid
from contextlib import ExitStack
from io import StringIO
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from ... import tokens
from ...exceptions import WebSocketsError
from ...models import ApiGateway, WebSocketSession


class StepFailed(WebSocketsError):
    pass


class Command(BaseCommand):
    help = (
        "Run the deployment smoke test against a deployed API or the local gateway: token, connect, "
        "session row, message, server->client message, channel broadcast, disconnect, cleanup."
    )

    def add_arguments(self, parser):
        parser.add_argument("--pk", type=int, required=True, help="The ApiGateway record.")
        parser.add_argument("--url", help="ws(s):// URL to connect to (default: the record's WebSocket URL).")
        parser.add_argument("--user", help="Username to connect as (needed when the view requires a token).")
        parser.add_argument("--timeout", type=float, default=10.0, help="Seconds to wait at each step (10).")

    def handle(self, *args, pk, url, user, timeout, **options):
        try:
            from websockets.sync.client import connect
        except ImportError:
            raise CommandError(
                'The smoke test needs the websockets library: pip install "django-aws-api-gateway-websockets[local]"'
            ) from None
        if timeout <= 0:
            raise CommandError("--timeout must be more than 0 seconds.")
        try:
            record = ApiGateway.objects.get(pk=pk)
        except ApiGateway.DoesNotExist:
            raise CommandError(f"No ApiGateway record with pk {pk}.") from None
        url = url or record.websocket_url
        if not url:
            raise CommandError(f"ApiGateway '{record.api_name}' has no WebSocket URL yet: pass --url wss://...")
        self.timeout = timeout
        channel = f"smoke-{uuid.uuid4().hex[:8]}"
        state: dict[str, Any] = {}
        steps = [
            ("token", lambda: self.token(user, state)),
            ("connect", lambda: self.connect(connect, url, channel, state)),
            ("session row created", lambda: self.session_row(record, channel, state)),
            ("message handled", lambda: self.message(state)),
            ("server -> client message", lambda: self.direct(state)),
            ("channel broadcast", lambda: self.broadcast(channel, state)),
            ("disconnect marked", lambda: self.disconnect(state)),
            ("cleanup", lambda: self.cleanup(state)),
        ]
        with ExitStack() as sockets:  # websockets wants its connections closed by a context
            state["sockets"] = sockets
            failed = self.run_steps(steps)
        self.stdout.write(
            "Review the Django and API Gateway logs for the smoke connection: " + state.get("connection_id", "-")
        )
        if failed:
            raise CommandError("Smoke test failed.")

    def run_steps(self, steps):
        """Print one line per step; True when one failed."""
        failed = False
        for name, step in steps:
            if failed:
                self.stdout.write(f"SKIP {name}")
                continue
            started = time.monotonic()
            try:
                detail = step()
            except StepFailed as exc:
                failed, line = True, f"FAIL {name}: {exc}"
            except Exception as exc:  # AWS, database or network trouble: report it as the step's failure
                failed, line = True, f"FAIL {name}: {type(exc).__name__}: {exc}"
            else:
                line = f"PASS {name} [{(time.monotonic() - started) * 1000:.0f} ms]" + (
                    f" ({detail})" if detail else ""
                )
            self.stdout.write(self.style.ERROR(line) if failed else self.style.SUCCESS(line))
        return failed

    def wait(self, predicate, what):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise StepFailed(f"timed out after {self.timeout:g}s waiting for {what}")

    def receive(self, state, expected):
        """Frames until one equals ``expected`` (two-way routes may interleave their answers)."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                frame = state["socket"].recv(timeout=max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                break
            except Exception as exc:
                raise StepFailed(f"socket closed: {exc}") from exc
            try:
                if json.loads(frame) == expected:
                    return
            except ValueError:
                continue
        raise StepFailed(f"{expected} did not arrive within {self.timeout:g}s")

    def token(self, username, state):
        if not username:
            return "no --user: connecting without a token (a view with USE_WS_TOKEN = True will refuse: pass --user)"
        try:
            user = get_user_model().objects.get_by_natural_key(username)
        except get_user_model().DoesNotExist:
            raise StepFailed(f"no user '{username}'") from None
        # Issued server-side, so bound to no browser session (as for a cookieless client).
        state["token"] = tokens.issue_token(user, "")
        return f"for {username}"

    def connect(self, connect, url, channel, state):
        query = {"channel": channel}
        if "token" in state:
            query["ws_token"] = state["token"]
        separator = "&" if "?" in url else "?"
        try:
            state["socket"] = state["sockets"].enter_context(
                connect(f"{url}{separator}{urlencode(query)}", open_timeout=self.timeout)
            )
        except Exception as exc:
            hint = ""
            if "token" not in state and any(code in str(exc) for code in ("401", "403")):
                hint = (
                    "\n     hint: the view requires a token (USE_WS_TOKEN): pass --user <username> "
                    "to connect with a token issued for that user"
                )
            raise StepFailed(f"{type(exc).__name__}: {exc}{hint}") from exc
        return url

    def session_row(self, record, channel, state):
        session = self.wait(
            lambda: WebSocketSession.objects.filter(api_gateway=record, channel_name=channel, connected=True).first(),
            f"a connected session row in channel {channel} for ApiGateway pk {record.pk}",
        )
        state["session"], state["connection_id"] = session, session.connection_id
        return session.connection_id

    def message(self, state):
        session = state["session"]
        before = session.request_count
        state["socket"].send(json.dumps({"handler": "ping"}))
        self.wait(
            lambda: WebSocketSession.objects.filter(pk=session.pk, request_count__gt=before).exists(),
            "Django to handle the message",
        )

    def direct(self, state):
        message = {"type": "smoke", "step": "direct"}
        result = state["session"].send_message(message)
        if not result.delivered:
            raise StepFailed(f"not delivered: gone={result.gone} failed={result.failed}")
        self.receive(state, message)

    def broadcast(self, channel, state):
        message = {"type": "smoke", "step": "broadcast"}
        result = WebSocketSession.objects.in_channel(channel).send_message(message)
        if len(result.delivered) != 1:
            raise StepFailed(f"delivered to {result.delivered}, gone {result.gone}, failed {result.failed}")
        self.receive(state, message)

    def disconnect(self, state):
        state.pop("socket").close()
        session = state["session"]
        self.wait(
            lambda: WebSocketSession.objects.filter(pk=session.pk, connected=False).exists(),
            "the session to be marked disconnected",
        )

    def cleanup(self, state):
        WebSocketSession.objects.filter(pk=state["session"].pk).delete()
        out = StringIO()
        call_command("cleanup_websocket_tokens", stdout=out)
        return "smoke session removed; " + " ".join(out.getvalue().split())
