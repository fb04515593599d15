"""Admin actions for ``ApiGateway``: each reports, per record, what really happened in AWS.

``admin.py`` registers them on ``ApiGatewayAdmin`` (all but ``create_api_gateway``, the 4.x
action, kept for admins that list it: the sync action creates too); they call the same
provisioning functions as the management commands.
"""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpResponse
from django.template import engines
from django.template.backends.django import DjangoTemplates
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import provisioning

CONFIRM_FIELD = "confirm_aws_delete"

# Inline so the package needs no template directory for one page.
CONFIRM_DELETE_PAGE = """{% extends "admin/base_site.html" %}
{% block content %}
<p>Delete these APIs from AWS (custom domain, Route 53 alias, routes, integrations, stages)?
Browsers connected to them are disconnected. The Django records are kept and can be created again.</p>
<ul>{% for record in queryset %}<li>{{ record.api_name }} ({{ record.api_id|default:"not created" }}{% if record.domain_name %}, {{ record.domain_name }}{% endif %})</li>{% endfor %}</ul>
<form method="post">{% csrf_token %}
{% for record in queryset %}<input type="hidden" name="{{ selected }}" value="{{ record.pk }}">{% endfor %}
<input type="hidden" name="action" value="delete_api_gateway">
<input type="hidden" name="{{ confirm_field }}" value="yes">
<input type="submit" value="Yes, delete from AWS"> <a href="">No, go back</a>
</form>
{% endblock %}"""


def _run(modeladmin, request, records, function, done):
    """One message per record: the steps taken, or the error (also kept in ``last_error``);
    then, as a warning, the drift the run found (e.g. routes that exist only in AWS, which
    the admin actions keep: ``sync_api_gateway --import-aws-routes`` or
    ``--delete-aws-only-routes`` deal with them)."""
    for record in records:
        try:
            plan = function(record)
        except provisioning.ProvisioningError as exc:
            modeladmin.message_user(request, f"{record}: {exc}", messages.ERROR)
            continue
        detail = "; ".join(plan.steps) if plan.changed else _("nothing to change")
        modeladmin.message_user(request, f"{record}: {done} ({detail})", messages.SUCCESS)
        if plan.drift:
            found = "; ".join(f"{kind}: {text}" for kind, text in plan.drift)
            modeladmin.message_user(
                request,
                _("%(record)s: drift between AWS and the record: %(found)s") % {"record": record, "found": found},
                messages.WARNING,
            )


@admin.action(description=gettext_lazy("Create API Gateway in AWS"), permissions=["change"])
def create_api_gateway(modeladmin, request, queryset):
    """The 4.x action: create (or complete) the APIs not created yet; a created one gets a
    warning pointing to the sync action, which applies changes."""
    to_create = []
    for record in queryset:
        if record.api_created:
            modeladmin.message_user(
                request,
                _("%(record)s: already created; use the action '%(sync)s' to apply changes.")
                % {"record": record, "sync": _("Sync API Gateway with AWS")},
                messages.WARNING,
            )
        else:
            to_create.append(record)
    _run(modeladmin, request, to_create, provisioning.sync_api, _("API created and deployed"))


@admin.action(description=gettext_lazy("Sync API Gateway with AWS (create, update, deploy)"), permissions=["change"])
def sync_api_gateway(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, provisioning.sync_api, _("in sync and deployed"))


@admin.action(description=gettext_lazy("Create custom domain in AWS"), permissions=["change"])
def create_custom_domain(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, provisioning.create_custom_domain, _("custom domain ready"))


@admin.action(description=gettext_lazy("Delete API Gateway from AWS"), permissions=["delete"])
def delete_api_gateway(modeladmin, request, queryset):
    """Asks for confirmation first, like Django's own delete action."""
    if request.POST.get(CONFIRM_FIELD) != "yes":
        engine = next(e for e in engines.all() if isinstance(e, DjangoTemplates))  # the admin needs one
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": _("Delete from AWS?"),
            "queryset": queryset,
            "selected": helpers.ACTION_CHECKBOX_NAME,
            "confirm_field": CONFIRM_FIELD,
            "opts": modeladmin.model._meta,
        }
        return HttpResponse(engine.from_string(CONFIRM_DELETE_PAGE).render(context, request))
    _run(modeladmin, request, queryset, provisioning.delete_api, _("deleted from AWS"))
