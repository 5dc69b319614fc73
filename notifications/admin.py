"""The health officials' admin: cases with their venue visits, publication, CSV import, dashboard.

A case's own upload (codes, review of proposed visits) is in notifications/admin_case_uploads.py.

Only members of "Health officials" (migration 0006) have permissions on cases; publishing
and withdrawing need ``notifications.publish_case`` as well. Staff log in with a second
factor when OTP_ADMIN_REQUIRED (leavehome/urls.py swaps in django-otp's OTPAdminSite); a
TOTP device is enrolled with ``manage.py totp_enrol USERNAME``, which prints the otpauth URI
and a QR code for an authenticator app. Every action here calls one service in
notifications/cases.py, which audits it.
"""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from leavehome.admin import admin_action_each
from leavehome.digits import AsciiIntegerFormField
from notifications import cases, tasks
from notifications.admin_case_uploads import CaseUploadAdminMixin
from notifications.advice import advice_in_force, advice_offsets_errors, advice_template_publish, advice_text_errors
from notifications.models import AdviceTemplate, Case, CaseVisit, Risk
from notifications.official_selectors import (
    CLUSTER_ORDERS,
    case_previews,
    chart_figures,
    cluster_candidates,
    cluster_candidates_csv,
    dashboard_figures,
    local_time_label,
)
from notifications.safety import kill_switch_is_on, kill_switch_state

# A case-visit CSV an official uploads: a few hundred rows at most (cases.IMPORT_MAX_ROWS).
IMPORT_MAX_BYTES = 256 * 1024


def _queued_safely(modeladmin, request, queue_later):
    """``queue_later(case=, actor=)``, with a broker outage told to the official instead of a 500.

    The request to publish is stored on the case before the task is sent (on commit, which
    in the admin is at once); when the broker cannot take it, the case stays queued and the
    publication sweep publishes it once the broker is back, which the official is told.
    """

    def call(*, case, actor):
        queued = queue_later(case=case, actor=actor)
        if queued.sent is False:
            modeladmin.message_user(
                request,
                _(
                    "%(case)s: the task queue is unavailable right now. The publication is recorded and "
                    "a worker carries it out as soon as the queue is back; nothing needs to be done again."
                )
                % {"case": case},
                level=messages.WARNING,
            )

    return call


def _zone_label() -> str:
    """``HKT, UTC+08:00``: the deployment's zone, which every time on these pages is in."""
    now = timezone.localtime()
    offset = now.strftime("%z")
    return f"{now:%Z}, UTC{offset[:3]}:{offset[3:]}"


zone_label = lazy(_zone_label, str)


class CaseVisitForm(forms.ModelForm):
    class Meta:
        model = CaseVisit
        fields = ["venue", "start", "end", "padding_minutes", "public"]
        field_classes = {"padding_minutes": AsciiIntegerFormField}
        help_texts = {
            "start": format_lazy(_("Local time ({zone})."), zone=zone_label()),
            "end": format_lazy(_("Local time ({zone}); the window is [start, end)."), zone=zone_label()),
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
    readonly_fields = ["source", "review"]
    extra = 1

    def _editable(self, obj):
        return obj is None or obj.status == Case.Status.DRAFT

    @admin.display(description=_("window start"))
    def start_local(self, visit):
        return local_time_label(visit.start)

    @admin.display(description=_("window end"))
    def end_local(self, visit):
        return local_time_label(visit.end)

    def get_fields(self, request, obj=None):
        if self._editable(obj):
            return super().get_fields(request, obj)
        # Read-only: the times with their zone (Django's own display would drop it).
        return ["venue", "start_local", "end_local", "padding_minutes", "public"]

    def get_readonly_fields(self, request, obj=None):
        if self._editable(obj):
            return super().get_readonly_fields(request, obj)
        return self.get_fields(request, obj)

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)


def _queued_message(n):
    return ngettext("%(n)d case queued for publication.", "%(n)d cases queued for publication.", n) % {"n": n}


def _withdrawn_message(n):
    return ngettext("%(n)d case withdrawn.", "%(n)d cases withdrawn.", n) % {"n": n}


def _each_case(modeladmin, request, queryset, service, done_message):
    admin_action_each(modeladmin, request, queryset, lambda case: service(case=case, actor=request.user), done_message)


def _local(field):
    @admin.display(description=Case._meta.get_field(field).verbose_name, ordering=field)
    def show(self, case):
        value = getattr(case, field)
        return local_time_label(value) if value else "–"

    show.__name__ = f"{field}_local"
    return show


@admin.register(Case)
class CaseAdmin(CaseUploadAdminMixin, admin.ModelAdmin):
    list_display = ["reference", "confirmed_on", "status", "visit_count", "published_at_local", "withdrawn_at_local"]
    list_filter = ["status", "confirmed_on"]
    search_fields = ["reference"]
    date_hierarchy = "confirmed_on"
    fields = ["reference", "confirmed_on", "message_en", "message_zh", "status", "created_by", "published_at_local"]
    readonly_fields = ["status", "created_by", "published_at_local"]
    history_fields = [
        "reference",
        "confirmed_on",
        "message_en",
        "message_zh",
        "status",
        "created_by",
        "published_at_local",
        "withdrawn_at_local",
    ]
    inlines = [CaseVisitInline]
    actions = ["publish", "withdraw"]
    change_list_template = "admin/notifications/case/change_list.html"
    change_form_template = "admin/notifications/case/change_form.html"

    published_at_local = _local("published_at")
    withdrawn_at_local = _local("withdrawn_at")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(visit_total=Count("visits"))

    @admin.display(description=_("venue visits"), ordering="visit_total")
    def visit_count(self, case):
        return case.visit_total

    def get_fields(self, request, obj=None):
        return self.history_fields if obj is not None and obj.status != Case.Status.DRAFT else self.fields

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != Case.Status.DRAFT:
            return self.history_fields  # published cases are history: only withdrawal changes them
        return self.readonly_fields

    def has_change_permission(self, request, obj=None):
        # Not a draft: the page is read-only, without save buttons; the case's own
        # Publish/Withdraw buttons are the only ways to act on it.
        if obj is not None and obj.status != Case.Status.DRAFT:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # cases leave only by retention, so the audit trail always has its object

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def has_publish_permission(self, request):
        return request.user.has_perm("notifications.publish_case")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        case = self.get_object(request, object_id)
        extra = {
            "may_publish": self.has_publish_permission(request),
            "kill_switch_on": kill_switch_is_on(),
            "approval_threshold": settings.PUBLICATION_APPROVAL_THRESHOLD,
        }
        if case is not None:
            extra["previews"] = case_previews(case)
            extra["blocked"] = any(not preview.exposure_tokens for preview in extra["previews"])
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    @admin.action(description=_("Publish selected cases (notifies exposed phones)"), permissions=["publish"])
    def publish(self, request, queryset):
        # A worker builds the exposures (it holds the tracing key); the case shows as
        # published once it has.
        _each_case(self, request, queryset, _queued_safely(self, request, tasks.case_publish_later), _queued_message)

    @admin.action(description=_("Withdraw selected cases (their notifications are withdrawn)"), permissions=["publish"])
    def withdraw(self, request, queryset):
        _each_case(self, request, queryset, cases.case_withdraw, _withdrawn_message)

    def case_action_view(self, request, case_id, action):
        """The Publish and Withdraw buttons of a case's page: one case, then back to its page."""
        if not self.has_publish_permission(request):
            raise PermissionDenied
        case = get_object_or_404(Case, pk=case_id)
        service, done = {
            "publish": (_queued_safely(self, request, tasks.case_publish_later), _queued_message),
            "withdraw": (cases.case_withdraw, _withdrawn_message),
            "approve": (
                _queued_safely(self, request, tasks.case_approve_later),
                lambda n: _("Approved: a worker publishes the case now."),
            ),
            "decline": (cases.case_approval_decline, lambda n: _("Sent back to draft; nothing was published.")),
        }[action]
        _each_case(self, request, [case], service, done)
        return redirect(reverse("admin:notifications_case_change", args=[case.pk]))

    def get_urls(self):
        own = [
            path(
                "<int:case_id>/import-visits/",
                self.admin_site.admin_view(self.import_visits_view),
                name="notifications_case_import_visits",
            ),
            path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name="notifications_dashboard"),
            path("clusters/", self.admin_site.admin_view(self.clusters_view), name="notifications_clusters"),
            *(
                path(
                    f"<int:case_id>/{action}/",
                    self.admin_site.admin_view(require_POST(self.case_action_view)),
                    {"action": action},
                    name=f"notifications_case_{action}",
                )
                for action in ("publish", "withdraw", "approve", "decline")
            ),
            path("kill-switch/", self.admin_site.admin_view(self.kill_switch_view), name="notifications_kill_switch"),
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

    def kill_switch_view(self, request):
        """Pause (or resume) all publication matching and pushes; see notifications/safety.py."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        may_operate = request.user.has_perm("notifications.operate_kill_switch")
        if request.method == "POST":
            if not may_operate:
                raise PermissionDenied
            active = request.POST.get("active") == "1"
            reason = request.POST.get("reason", "")
            if active and not reason.strip():
                messages.error(request, _("Say why everything is paused: the reason is shown to every official."))
            else:
                tasks.kill_switch_turn(active=active, actor=request.user, reason=reason)
                if active:
                    messages.warning(request, _("Kill switch on: no publication is matched and no push is sent."))
                else:
                    messages.success(request, _("Kill switch off: paused work is running again."))
                return redirect(reverse("admin:notifications_kill_switch"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Kill switch"),
            "switch": kill_switch_state(),
            "may_operate": may_operate,
        }
        return TemplateResponse(request, "admin/notifications/kill_switch.html", context)

    def clusters_view(self, request):
        """Venues two or more cases visited within ``?days=`` (sortable with ``?o=``; ``?format=csv``)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            days = min(max(int(request.GET.get("days", settings.CLUSTER_CANDIDATE_DAYS)), 1), 31)
        except ValueError:
            days = settings.CLUSTER_CANDIDATE_DAYS
        order = request.GET.get("o", "cases")
        order = order if order in CLUSTER_ORDERS else "cases"
        clusters = cluster_candidates(days=days, order=order)
        if request.GET.get("format") == "csv":
            response = HttpResponse(cluster_candidates_csv(clusters), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="cluster-candidates-{days}d.csv"'
            return response
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Cluster candidates"),
            "clusters": clusters,
            "days": days,
            "order": order,
            "orders": [
                ("cases", _("most cases")),
                ("latest", _("latest visit")),
                ("overlap", _("overlapping first")),
                ("venue", _("venue name")),
            ],
        }
        return TemplateResponse(request, "admin/notifications/clusters.html", context)

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": _("Dashboard")}
        context.update(dashboard_figures())
        context["charts"] = chart_figures()
        context["chart_labels"] = {
            "high": str(_("High")),
            "low": str(_("Low")),
            "published": str(_("Published")),
            "withdrawn": str(_("Withdrawn")),
            "delivered": str(_("Delivered")),
            "failed": str(_("Failed permanently")),
            "lag": str(_("seconds")),
            "tokens": str(_("Visit tokens")),
            "tokens_estimate": str(_("Visit tokens (estimate)")),
            "uploads": str(_("Uploads")),
            "upload_tokens": str(_("Tokens uploaded")),
            "lag_mean": str(_("mean (seconds)")),
            "lag_max": str(_("longest (seconds)")),
        }
        return TemplateResponse(request, "admin/notifications/dashboard.html", context)


class AdviceTemplateForm(forms.ModelForm):
    test_day_offsets = forms.CharField(
        label=_("test days after exposure"),
        required=False,
        help_text=_("Days after the exposure date, separated by commas, e.g. 3, 7; empty for none."),
    )

    class Meta:
        model = AdviceTemplate
        fields = ["risk", "text_en", "text_zh", "test_day_offsets"]
        help_texts = {
            "text_en": _("Placeholders: {venue}, {date} (the exposure date), {test_dates}."),
            "text_zh": _("Placeholders: {venue}, {date} (the exposure date), {test_dates}."),
        }

    def clean_test_day_offsets(self):
        text = self.cleaned_data["test_day_offsets"]
        if isinstance(text, list):
            return text
        try:
            return [int(part) for part in text.replace("，", ",").split(",") if part.strip()]
        except ValueError as error:
            raise ValidationError(_("Test days must be whole numbers of days after the exposure.")) from error

    def clean(self):
        data = super().clean()
        for field in ("text_en", "text_zh"):
            for problem in advice_text_errors(data.get(field) or ""):
                self.add_error(field, problem)
        offsets = data.get("test_day_offsets")
        if offsets is not None:
            for problem in advice_offsets_errors(offsets):
                self.add_error("test_day_offsets", problem)
        return data


@admin.register(AdviceTemplate)
class AdviceTemplateAdmin(admin.ModelAdmin):
    """Advice templates: a save is a new version (never an edit), put in force by the service."""

    form = AdviceTemplateForm
    list_display = ["risk", "version", "text_en", "test_day_offsets", "created_by", "created_at_local"]
    list_filter = ["risk"]
    readonly_fields = ["risk", "version", "text_en", "text_zh", "test_day_offsets", "created_by", "created_at_local"]

    @admin.display(description=_("created"), ordering="created_at")
    def created_at_local(self, template):
        return local_time_label(template.created_at)

    def has_add_permission(self, request):
        return request.user.has_perm("notifications.edit_advice")

    def has_change_permission(self, request, obj=None):
        return False  # versions are history; a change is a new version

    def has_delete_permission(self, request, obj=None):
        return False  # cases pin versions: what phones were told stays explainable

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_changeform_initial_data(self, request):
        # A new version starts from the one in force for the risk asked for (?risk=low).
        risk = request.GET.get("risk", Risk.HIGH)
        current = advice_in_force(risk if risk in Risk.values else Risk.HIGH)
        return {
            "risk": current.risk,
            "text_en": current.text_en,
            "text_zh": current.text_zh,
            "test_day_offsets": ", ".join(str(day) for day in current.test_day_offsets),
        }

    def save_model(self, request, obj, form, change):
        try:
            saved = advice_template_publish(
                risk=obj.risk,
                text_en=obj.text_en,
                text_zh=obj.text_zh,
                test_day_offsets=form.cleaned_data["test_day_offsets"],
                actor=request.user,
            )
        except ValidationError as error:
            # Checked again in the form's clean(); a race (two saves at once) lands here.
            raise PermissionDenied(" ".join(error.messages)) from error
        obj.pk, obj.version, obj.created_at = saved.pk, saved.version, saved.created_at
