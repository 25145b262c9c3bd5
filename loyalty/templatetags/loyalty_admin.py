"""Template tags for loyalty's admin templates (not for shop pages)."""

from __future__ import annotations

from typing import Any

from django import template

from ..admin.sections import APP_LABEL, app_sections

register = template.Library()


@register.simple_tag
def loyalty_admin_sections(app: dict[str, Any]) -> list[dict[str, Any]]:
    """``{% loyalty_admin_sections app as sections %}``: loyalty's models by section (``admin.sections``)."""
    return app_sections(app) if app.get("app_label") == APP_LABEL else []
