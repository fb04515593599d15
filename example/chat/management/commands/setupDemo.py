from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand

from django_aws_api_gateway_websockets.models import (
    ApiGateway,
    ApiGatewayAdditionalRoute,
    ChannelPermission,
    ChannelPermissionRule,
)


class Command(BaseCommand):
    help = "Create the demo users and the ApiGateway record the local gateway plays."

    def add_arguments(self, parser):
        parser.add_argument("--django-url", default="http://127.0.0.1:8000")

    def handle(self, *args, django_url, **options):
        users = get_user_model().objects
        for name, staff in (("demo", False), ("staff", True)):
            user, created = users.get_or_create(username=name, defaults={"is_staff": staff, "is_superuser": staff})
            if created:
                user.set_password(name)
                user.save()
        staff_permission = Permission.objects.get(content_type__app_label="chat", codename="use_staff_channel")
        users.get(username="staff").user_permissions.add(staff_permission)
        # Who may join the "staff" channel: a rule, editable in the admin (Channel permissions).
        staff_channel, _ = ChannelPermission.objects.update_or_create(
            channel_name="staff",
            defaults={"access": ChannelPermission.Access.PERMISSIONS, "description": "Staff chat"},
        )
        if not staff_channel.rules.exists():
            ChannelPermissionRule.objects.create(channel_permission=staff_channel).permissions.add(staff_permission)
        gateway, _ = ApiGateway.objects.update_or_create(
            api_name="demo",
            defaults={
                "api_id": "demo000001",
                "stage_name": "local",
                "target_base_endpoint": f"{django_url}/ws/",
                "default_route_two_way": True,
            },
        )
        ApiGatewayAdditionalRoute.objects.update_or_create(
            api_gateway=gateway,
            route_key="staff",
            defaults={"name": "Staff chat", "integration_url": f"{django_url}/ws-staff/staff"},
        )
        self.stdout.write(
            f"Users: demo / demo (chat) and staff / staff (chat, staff channel, admin). Gateway record {gateway.pk}."
        )
