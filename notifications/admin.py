"""The health officials' admin: cases with their venue visits, publication, CSV import, dashboard.

Only members of "Health officials" (migration 0006) have permissions on cases; publishing
and withdrawing need ``notifications.publish_case`` as well. Staff log in with a second
factor when OTP_ADMIN_REQUIRED (leavehome/urls.py swaps in django-otp's OTPAdminSite); a
TOTP device is enrolled with ``manage.py totp_enrol USERNAME``, which prints the otpauth URI
and a QR code for an authenticator app. Every action here calls one service in
notifications/cases.py, which audits it.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from kombu.exceptions import OperationalError as KombuOperationalError

from leavehome.admin import admin_action_each
from leavehome.digits import AsciiIntegerFormField
from notifications import cases, tasks
from notifications.models import Case, CaseVisit, Device, MatchingRun, Notification
from notifications.partitions import visit_tokens_stored_estimate
from notifications.push.selectors import push_delivery_summary
from venues.models import Venue

# A case-visit CSV an official uploads: a few hundred rows at most (cases.IMPORT_MAX_ROWS).
IMPORT_MAX_BYTES = 256 * 1024


def _publish_later(case, actor):
    """Queue a case's publication; a broker outage is the official's to hear about, not a 500."""
    try:
        tasks.case_publish_later(case=case, actor=actor)
    except KombuOperationalError as error:
        # Nothing was queued and the case is still a draft: publishing again later is safe.
        raise ValidationError(
            _("The task queue is unavailable, so the case was not queued. Try again in a minute.")
        ) from error


class CaseVisitForm(forms.ModelForm):
    class Meta:
        model = CaseVisit
        fields = ["venue", "start", "end", "padding_minutes"]
        field_classes = {"padding_minutes": AsciiIntegerFormField}
        help_texts = {
            "start": _("Local time (Hong Kong)."),
            "end": _("Local time (Hong Kong); the window is [start, end)."),
            "padding_minutes": _("Widens the window on both sides."),
        }

    def clean(self):
        data = super().clean()
        errors = cases.case_visit_window_errors(start=data.get("start"), end=data.get("end"))
        if data.get("start") and data.get("end") and errors:
            raise ValidationError(errors)
        return data


class CaseVisitInline(admin.TabularInline):
    model = CaseVisit
    form = CaseVisitForm
    autocomplete_fields = ["venue"]
    extra = 1

    def _editable(self, obj):
        return obj is None or obj.status == Case.Status.DRAFT

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["reference", "confirmed_on", "status", "visit_count", "published_at", "withdrawn_at"]
    list_filter = ["status", "confirmed_on"]
    search_fields = ["reference"]
    date_hierarchy = "confirmed_on"
    fields = ["reference", "confirmed_on", "message_en", "message_zh", "status", "created_by", "published_at"]
    readonly_fields = ["status", "created_by", "created_at", "published_at", "withdrawn_at"]
    inlines = [CaseVisitInline]
    actions = ["publish", "withdraw"]
    change_list_template = "admin/notifications/case/change_list.html"
    change_form_template = "admin/notifications/case/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(visit_total=Count("visits"))

    @admin.display(description=_("venue visits"), ordering="visit_total")
    def visit_count(self, case):
        return case.visit_total

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != Case.Status.DRAFT:
            return [*self.fields, "withdrawn_at"]  # published cases are history: only withdrawal changes them
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return False  # cases leave only by retention, so the audit trail always has its object

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def has_publish_permission(self, request):
        return request.user.has_perm("notifications.publish_case")

    @admin.action(description=_("Publish selected cases (notifies exposed phones)"), permissions=["publish"])
    def publish(self, request, queryset):
        # A worker builds the exposures (it holds the tracing key); the case shows as
        # published once it has.
        admin_action_each(
            self,
            request,
            queryset,
            lambda case: _publish_later(case, request.user),
            lambda n: (
                ngettext("%(n)d case queued for publication.", "%(n)d cases queued for publication.", n) % {"n": n}
            ),
        )

    @admin.action(description=_("Withdraw selected cases (their notifications are withdrawn)"), permissions=["publish"])
    def withdraw(self, request, queryset):
        admin_action_each(
            self,
            request,
            queryset,
            lambda case: cases.case_withdraw(case=case, actor=request.user),
            lambda n: ngettext("%(n)d case withdrawn.", "%(n)d cases withdrawn.", n) % {"n": n},
        )

    def get_urls(self):
        own = [
            path(
                "<int:case_id>/import-visits/",
                self.admin_site.admin_view(self.import_visits_view),
                name="notifications_case_import_visits",
            ),
            path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name="notifications_dashboard"),
        ]
        return own + super().get_urls()

    def import_visits_view(self, request, case_id):
        """Upload a CSV, see every row with its errors, then confirm: all rows are added or none."""
        case = get_object_or_404(Case, pk=case_id)
        if not self.has_change_permission(request, case):
            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "case": case, "opts": self.model._meta, "rows": None}
        context["title"] = _("Import venue visits for %(case)s") % {"case": case}
        if request.method == "POST":
            text = request.POST.get("csv_text", "")
            upload = request.FILES.get("csv_file")
            if upload is not None:
                if upload.size > IMPORT_MAX_BYTES:
                    messages.error(request, _("The file is too large."))
                    return TemplateResponse(request, "admin/notifications/case/import_visits.html", context)
                text = upload.read().decode("utf-8-sig", errors="replace")
            rows = []
            try:
                rows = cases.case_visits_csv_parse(text)
                if request.POST.get("confirm") == "1":
                    visits = cases.case_visits_import(case=case, rows=rows, actor=request.user)
                    messages.success(request, _("%(n)d venue visits imported.") % {"n": len(visits)})
                    return redirect(reverse("admin:notifications_case_change", args=[case.pk]))
            except ValidationError as error:
                messages.error(request, " ".join(error.messages))
            context.update(rows=rows, csv_text=text, has_errors=any(row.errors for row in rows))
        return TemplateResponse(request, "admin/notifications/case/import_visits.html", context)

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": _("Dashboard")}
        context.update(dashboard_figures())
        return TemplateResponse(request, "admin/notifications/dashboard.html", context)


def _counts(queryset, *fields):
    return list(queryset.values(*fields).annotate(total=Count("pk")).order_by(*fields))


def dashboard_figures() -> dict:
    """What the dashboard shows: a few grouped counts, each one query."""
    return {
        "venues": _counts(Venue.objects.all(), "status"),
        "devices": Device.objects.count(),
        "visit_tokens": visit_tokens_stored_estimate(),
        "cases": _counts(Case.objects.all(), "status"),
        "matches": _counts(Notification.objects.all(), "risk", "status"),
        "runs": list(MatchingRun.objects.select_related("case")[:20]),
        "push": push_delivery_summary(),
    }
