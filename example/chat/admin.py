from django.contrib import admin, messages

from .models import Notification
from .notify import push_notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("text", "created_on")
    actions = ["push"]

    @admin.action(description="Push to every connected browser")
    def push(self, request, queryset):
        for notification in queryset:
            result = push_notification(notification.text)
            self.message_user(
                request,
                f"'{notification.text}': delivered to {len(result.delivered)}, gone {len(result.gone)}, failed {len(result.failed)}",
                messages.SUCCESS if result.ok else messages.WARNING,
            )
