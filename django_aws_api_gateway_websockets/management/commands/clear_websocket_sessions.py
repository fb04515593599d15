from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ... import history, message_parts, presence, protocol, signals
from ...conf import get_setting
from ...models import Subscription, WebSocketSession


class Command(BaseCommand):
    help = (
        "Delete disconnected WebSocket sessions. --older-than DAYS keeps recent ones; "
        "--stale first marks sessions disconnected that are older than API Gateway's 2-hour cap. "
        'Also prunes the channel history past its retention (WEBSOCKETS["history_*"]).'
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=float,
            default=0,
            metavar="DAYS",
            help="Only delete sessions last updated more than DAYS days ago.",
        )
        parser.add_argument(
            "--stale",
            action="store_true",
            help="Mark connected sessions created more than 2 hours ago as disconnected first.",
        )

    def handle(self, *args, older_than, stale, **options):
        if older_than < 0:
            raise CommandError("--older-than must be zero or more days.")
        now = timezone.now()
        removed = {}
        if stale:
            cutoff = now - timedelta(seconds=protocol.MAX_CONNECTION_SECONDS)
            stale_rows = WebSocketSession.objects.filter(connected=True, created_on__lt=cutoff)
            announce = get_setting("presence_cleanup_broadcast")
            channels = (  # every channel the stale connections hold
                set(Subscription.objects.filter(connection__in=stale_rows).values_list("channel", flat=True))
                if announce
                else ()
            )
            removed["stale_marked"] = stale_rows.update(connected=False, updated_on=now)
            self.stdout.write(f"Marked {removed['stale_marked']} stale session(s) disconnected.")
            for channel in sorted(channels):  # the channels' presence, reconciled
                presence.announce(channel, "sync")
        # Client messages whose parts did not all arrive in time: dropped, the client told.
        expired_messages = message_parts.expire(now=now)  # before their rows go with the sessions
        sessions = WebSocketSession.objects.filter(connected=False)
        if older_than:
            sessions = sessions.filter(updated_on__lt=now - timedelta(days=older_than))
        # Their subscriptions go with them (cascade); the count is of the connections only.
        _, per_model = sessions.delete()
        removed["sessions"] = per_model.get(WebSocketSession._meta.label, 0)
        self.stdout.write(self.style.SUCCESS(f"Deleted {removed['sessions']} disconnected session(s)."))
        removed["history_messages"] = history.prune(now)
        self.stdout.write(f"Pruned {removed['history_messages']} channel history message(s).")
        removed["expired_message_parts"] = expired_messages
        self.stdout.write(f"Dropped {expired_messages} client message(s) whose parts did not all arrive in time.")
        signals.cleanup_run.send(sender=type(self), command="clear_websocket_sessions", removed=removed)
