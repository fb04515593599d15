from django.core.management.base import BaseCommand, CommandError

from ... import signals
from ...ratelimit import cleanup_attempts
from ...tokens import cleanup_tokens


class Command(BaseCommand):
    help = "Delete used or expired WebSocket tokens and old connection-attempt records."

    def add_arguments(self, parser):
        parser.add_argument(
            "--token-age",
            type=int,
            default=300,
            metavar="SECONDS",
            help="Delete tokens older than this (used tokens go whatever their age). Default 300.",
        )
        parser.add_argument(
            "--rate-limit-age",
            type=int,
            default=7,
            metavar="DAYS",
            help="Delete connection attempts older than this. Default 7.",
        )

    def handle(self, *args, token_age, rate_limit_age, **options):
        if token_age < 0 or rate_limit_age < 0:
            raise CommandError("--token-age and --rate-limit-age must be zero or more.")
        removed = {"tokens": cleanup_tokens(token_age), "rate_limits": cleanup_attempts(rate_limit_age)}
        self.stdout.write(self.style.SUCCESS(f"Deleted {removed['tokens']} WebSocket token(s)."))
        self.stdout.write(self.style.SUCCESS(f"Deleted {removed['rate_limits']} connection attempt record(s)."))
        signals.cleanup_run.send(sender=type(self), command="cleanup_websocket_tokens", removed=removed)
