from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from chat.models import Notification
from chat.notify import push_notification


class Command(BaseCommand):
    help = "Push a notification to every connected browser, or to one user's."

    def add_arguments(self, parser):
        parser.add_argument("text")
        parser.add_argument("--user", help="Only this username's connections.")

    def handle(self, *args, text, user, **options):
        target = None
        if user:
            try:
                target = get_user_model().objects.get_by_natural_key(user)
            except get_user_model().DoesNotExist:
                raise CommandError(f"No user '{user}'.") from None
        Notification.objects.create(text=text)
        result = push_notification(text, target)
        self.stdout.write(
            f"Delivered to {len(result.delivered)} connection(s); {len(result.gone)} gone; {len(result.failed)} failed."
        )
