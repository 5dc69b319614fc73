"""Staff admin for venues: search, filters, suspend and reinstate (audited)."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from leavehome.admin import ReadOnlyAdminMixin, admin_action_each
from venues.models import SigningKey, Venue, VenueCode, VenueImport
from venues.services import venue_reinstate, venue_suspend


class VenueCodeInline(admin.TabularInline):
    model = VenueCode
    fields = ["version", "signing_key", "issued_at", "revoked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Venue)
class VenueAdmin(admin.ModelAdmin):
    # search_fields also serves the case admin's venue autocomplete.
    search_fields = ["name_en", "name_zh", "address_en", "address_zh", "=id", "owner__email"]
    list_display = ["name_en", "name_zh", "category", "district", "status", "current_version", "owner", "created_at"]
    list_filter = ["status", "category", "district", "created_at"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"
    readonly_fields = ["id", "owner", "status", "current_version", "import_batch", "created_at", "updated_at"]
    # Names and addresses are signed into codes on walls; staff change them only by asking the owner to re-register.
    fields = [
        "id",
        "owner",
        "name_en",
        "name_zh",
        "address_en",
        "address_zh",
        "district",
        "category",
        "status",
        "current_version",
        "import_batch",
        "created_at",
        "updated_at",
    ]
    inlines = [VenueCodeInline]
    actions = ["suspend", "reinstate"]

    def get_readonly_fields(self, request, obj=None):
        return self.fields if obj is not None else self.readonly_fields

    def has_add_permission(self, request):
        return False  # venues are registered by their owners, with codes issued by the service

    def has_delete_permission(self, request, obj=None):
        return False  # codes on walls must stay explainable; suspend instead

    @admin.action(description=_("Suspend selected venues (revokes their codes)"), permissions=["change"])
    def suspend(self, request, queryset):
        admin_action_each(
            self,
            request,
            queryset,
            lambda venue: venue_suspend(venue=venue, actor=request.user, reason="admin action"),
            lambda n: ngettext("%(n)d venue suspended.", "%(n)d venues suspended.", n) % {"n": n},
        )

    @admin.action(description=_("Reinstate selected venues"), permissions=["change"])
    def reinstate(self, request, queryset):
        admin_action_each(
            self,
            request,
            queryset,
            lambda venue: venue_reinstate(venue=venue, actor=request.user, reason="admin action"),
            lambda n: ngettext("%(n)d venue reinstated.", "%(n)d venues reinstated.", n) % {"n": n},
        )


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: keys are managed with the signing_key_* management commands (audited)."""

    list_display = ["kid", "status", "created_at", "retired_at"]
    list_filter = ["status"]
    fields = ["kid", "status", "created_at", "retired_at"]
    readonly_fields = fields


@admin.register(VenueImport)
class VenueImportAdmin(admin.ModelAdmin):
    list_display = ["file_name", "owner", "venue_count", "created_at"]
    search_fields = ["file_name", "owner__email"]
    readonly_fields = ["file_name", "owner", "venue_count", "created_at"]

    def has_add_permission(self, request):
        return False
