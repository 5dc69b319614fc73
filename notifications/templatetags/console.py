"""Template tags of the officials' console."""

from django import template

from notifications.safety import kill_switch_state

register = template.Library()


@register.inclusion_tag("admin/notifications/kill_switch_banner.html", takes_context=True)
def kill_switch_banner(context):
    """The banner every admin page shows while the kill switch is on (one primary-key read)."""
    user = context.get("user")
    if user is None or not getattr(user, "is_staff", False):
        return {"switch": None}
    switch = kill_switch_state()
    return {"switch": switch if switch.active else None}
