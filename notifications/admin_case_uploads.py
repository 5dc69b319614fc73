"""The case page's upload pieces: issue and revoke a one-time upload code, review proposed visits.

Kept apart from notifications/admin.py as a mixin of CaseAdmin, so other work on the case page
composes with it. Issuing needs ``notifications.add_caseuploadcode``, revoking
``notifications.change_caseuploadcode`` (both granted to "Health officials" by migration
0008); accepting proposed visits needs the right to change case visits. Removing a proposed
visit or padding it is done in the case's venue visits, like any other visit. Every action
calls one service in notifications/case_uploads.py, which audits it.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from notifications import case_uploads
from notifications.models import Case, CaseUploadCode, CaseVisit


def _case_page(case):
    return redirect(reverse("admin:notifications_case_change", args=[case.pk]))


def case_upload_panel(*, case: Case, user) -> dict:
    """What the case page shows of uploads: the codes, the proposed visits, and what the user may do."""
    now = timezone.now()
    codes = list(CaseUploadCode.objects.filter(case=case))
    for code in codes:
        code.live = case_uploads.upload_code_live(code, now=now)
    proposed = list(
        case.visits.filter(review=CaseVisit.Review.PROPOSED).select_related("venue").order_by("start", "venue_id")
    )
    draft = case.status == Case.Status.DRAFT
    return {
        "upload_codes": codes,
        "proposed_visits": proposed,
        "can_issue_upload_code": draft and user.has_perm("notifications.add_caseuploadcode"),
        "can_revoke_upload_code": user.has_perm("notifications.change_caseuploadcode"),
        "can_accept_visits": draft and bool(proposed) and user.has_perm("notifications.change_casevisit"),
    }


class CaseUploadAdminMixin:
    """Adds the upload panel and its three actions to the case admin."""

    def get_urls(self):
        wrap = self.admin_site.admin_view
        own = [
            path(
                "<int:case_id>/upload-code/",
                wrap(require_POST(self.upload_code_issue_view)),
                name="notifications_case_upload_code_issue",
            ),
            path(
                "<int:case_id>/upload-code/<int:code_id>/revoke/",
                wrap(require_POST(self.upload_code_revoke_view)),
                name="notifications_case_upload_code_revoke",
            ),
            path(
                "<int:case_id>/accept-uploaded-visits/",
                wrap(require_POST(self.uploaded_visits_accept_view)),
                name="notifications_case_uploaded_visits_accept",
            ),
        ]
        return own + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        case = self.get_object(request, object_id)
        if case is not None and self.has_view_permission(request, case):
            extra_context = {**(extra_context or {}), **case_upload_panel(case=case, user=request.user)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _case_for(self, request, case_id, permission):
        case = get_object_or_404(Case, pk=case_id)
        # The right to change cases at all: a case no longer a draft has a read-only page, and
        # the upload services refuse it with a message the official sees on that page.
        if not (self.has_change_permission(request) and request.user.has_perm(permission)):
            raise PermissionDenied
        return case

    def upload_code_issue_view(self, request, case_id):
        """Issue a code and show it this once, with its expiry (it is stored only hashed)."""
        case = self._case_for(request, case_id, "notifications.add_caseuploadcode")
        try:
            upload_code, code = case_uploads.case_upload_code_issue(case=case, actor=request.user)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return _case_page(case)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "case": case,
            "upload_code": upload_code,
            "code": code,
            "title": _("Upload code for %(case)s") % {"case": case},
        }
        response = TemplateResponse(request, "admin/notifications/case/upload_code_issued.html", context)
        response["Cache-Control"] = "no-store"  # the code must not outlive this page in a cache (admin adds more)
        return response

    def upload_code_revoke_view(self, request, case_id, code_id):
        case = self._case_for(request, case_id, "notifications.change_caseuploadcode")
        upload_code = get_object_or_404(CaseUploadCode, pk=code_id, case=case)
        try:
            case_uploads.case_upload_code_revoke(upload_code=upload_code, actor=request.user)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, _("The upload code was revoked."))
        return _case_page(case)

    def uploaded_visits_accept_view(self, request, case_id):
        case = self._case_for(request, case_id, "notifications.change_casevisit")
        try:
            accepted = case_uploads.case_visits_accept(case=case, actor=request.user)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            message = ngettext("%(n)d uploaded visit accepted.", "%(n)d uploaded visits accepted.", accepted)
            messages.success(request, message % {"n": accepted})
        return _case_page(case)
