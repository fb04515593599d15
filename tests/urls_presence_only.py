"""A project serving one WebSocketView (tests/send_path/test_history.py: presence without a target)."""

from django.urls import path

from . import views

urlpatterns = [path("history/<slug:route>", views.HistoryView.as_view())]
