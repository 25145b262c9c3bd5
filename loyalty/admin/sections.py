"""Loyalty's models on the admin index and in the sidebar, grouped by what staff come to do.

Django lists an app's models alphabetically; loyalty has some 25, which reads like a table of
contents in random order. ``SECTIONS`` groups them (programme set-up, members and points, ...),
each with a one-line description, and :func:`app_sections` splits loyalty's entry of any
admin site's app list into them: ``templates/admin/app_list.html`` renders it, on the index,
the Loyalty app page and the sidebar alike. Other apps' entries are left as they are.

A model registered in the admin without a section still shows, in a last "Other" section,
and ``tests/loyalty/test_admin_sections.py`` fails until it is given one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

APP_LABEL = "loyalty"


@dataclass(frozen=True)
class Section:
    key: str
    title: str | Promise
    description: str | Promise
    models: tuple[str, ...]  # object names, in the order staff see them


SECTIONS: tuple[Section, ...] = (
    Section(
        "setup",
        _("Programme set-up"),
        _("Programmes and how members earn: earning rules and tiers."),
        ("Program", "EarningRule", "Tier"),
    ),
    Section(
        "members",
        _("Members and points"),
        _("Find a member, adjust points, read the ledger, approve pending points, see referrals."),
        ("Member", "PointsEntry", "PendingPoints", "Referral"),
    ),
    Section(
        "rewards",
        _("Rewards and codes"),
        _("What members redeem points for, and the codes they were given."),
        ("Reward", "Redemption", "RewardCode"),
    ),
    Section(
        "campaigns",
        _("Campaigns and emails"),
        _("Re-engagement campaigns, their messages, and every email loyalty sends."),
        ("Campaign", "Message", "OutboundEmail"),
    ),
    Section(
        "health",
        _("Customer health"),
        _("Who is at risk and in which segment, and the nightly model behind it."),
        ("CustomerHealth", "SegmentChange", "HealthSettings", "HealthModelFit", "HealthRun"),
    ),
    Section(
        "voice",
        _("Customer voice"),
        _("Post-purchase surveys, the answers and NPS, who was asked."),
        ("Survey", "SurveyResponse", "SurveyInvitation"),
    ),
    Section(
        "logs",
        _("Logs"),
        _("What the engine recorded: purchases, order events from the shop, tier changes."),
        ("Purchase", "OrderEvent", "TierChange"),
    ),
)
OTHER = Section("other", _("Other"), _("Models without a section yet."), ())


def app_sections(app: dict[str, Any]) -> list[dict[str, Any]]:
    """Loyalty's entry of an admin app list (``AdminSite.get_app_list``) as sections, in the
    order of ``SECTIONS``: each a dict with ``key``, ``title``, ``description`` and the
    ``models`` the user may see, in the section's order. Empty sections are left out."""
    by_name = {model["object_name"]: model for model in app.get("models", [])}
    sections = []
    for section in (*SECTIONS, OTHER):
        if section is OTHER:
            models = [model for name, model in by_name.items() if not section_of(name)]
        else:
            models = [by_name[name] for name in section.models if name in by_name]
        if models:
            sections.append(
                {"key": section.key, "title": section.title, "description": section.description, "models": models}
            )
    return sections


def section_of(object_name: str) -> Section | None:
    """The section a loyalty model is listed in (``None``: none yet)."""
    return next((section for section in SECTIONS if object_name in section.models), None)
