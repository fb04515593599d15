"""The operations page: the changelist of MinuteCounter is a dashboard (staff only)."""

from django.contrib import admin
from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.urls import path

from . import dashboard
from .models import MinuteCounter


@admin.register(MinuteCounter)
class OperationsAdmin(admin.ModelAdmin):
    refresh_seconds = 5

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def get_urls(self):
        data = path("data/", self.admin_site.admin_view(self.data_view), name="aws_websockets_operations_data")
        return [data, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "WebSocket operations",
            "opts": self.model._meta,
            "refresh_seconds": self.refresh_seconds,
            "initial": dashboard.snapshot(),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "aws_websockets_operations/dashboard.html", context)

    def data_view(self, request):
        if not self.has_view_permission(request):
            return JsonResponse({"error": "Staff only."}, status=403)
        return JsonResponse(dashboard.snapshot())
