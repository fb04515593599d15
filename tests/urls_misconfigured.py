from django.urls import path, re_path

from .views import ChatView, OpenView

urlpatterns = [
    path("ws/<str:route>", ChatView.as_view()),  # not a slug
    re_path(r"^open/(?P<route>\w+)$", OpenView.as_view()),  # no converter
]
