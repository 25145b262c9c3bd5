"""The dashboard's tables: members per tier and per segment (linked to the member list), campaign results."""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import reverse
from django.utils.translation import gettext as _

from ...models import Program, Segment
from ...selectors import kpis
from .formatters import _number, count, money, percent


def _share(part: int, whole: int | None) -> str:
    return percent(part / whole) if whole else "–"


def _members_url(program: Program, **filters) -> str:
    return reverse("admin:loyalty_member_changelist") + "?" + urlencode({"program__id__exact": program.pk, **filters})


def tier_rows(board: kpis.Dashboard) -> list[dict]:
    """Members per tier now, lowest first; "No tier" last (left out when it is empty and there are tiers)."""
    members = board.current.members
    rows = []
    for row in members.tiers:
        if row.tier_id is None:
            if row.members == 0 and len(members.tiers) > 1:
                continue
            name, url = _("No tier"), _members_url(board.program, tier__isnull="True")
        else:
            name, url = row.name, _members_url(board.program, tier__id__exact=row.tier_id)
        rows.append(
            {
                "name": name,
                "colour": row.colour,
                "members": count(row.members),
                "share": _share(row.members, members.current),
                "url": url,
            }
        )
    return rows


def segment_rows(board: kpis.Dashboard) -> list[dict]:
    members = board.current.members
    rows = []
    for row in members.segments:
        if row.segment:
            label, url = row.label, _members_url(board.program, health__segment__exact=row.segment)
        else:
            label, url = _("Not scored yet"), _members_url(board.program, health__segment__isnull="True")
        rows.append(
            {
                "label": label,
                "members": row.members,
                "members_text": count(row.members),
                "share": _share(row.members, members.current),
                "url": url,
                "at_risk": row.segment == Segment.AT_RISK,
            }
        )
    return rows


def campaign_rows(board: kpis.Dashboard) -> list[dict]:
    currency = board.program.currency

    def rate(value) -> str:
        return "–" if value is None else f"{_number(value, 1)}\u00a0%"

    rows = []
    for result in board.campaigns:
        report = result.report
        uplift = report["uplift"]
        rows.append(
            {
                "name": result.name,
                "url": reverse("admin:loyalty_campaign_change", args=[result.campaign_id]),
                "active": result.is_active,
                "sent": count(report["sent"]),
                "opened": count(report["opened"]),
                "clicked": count(report["clicked"]),
                "converted": count(report["converted"]),
                "conversion_rate": rate(report["conversion_rate"]),
                "control_rate": rate(report["control"]["conversion_rate"]),
                "control_members": count(report["control"]["members"]),
                "uplift": "–" if uplift is None else f"{'+' if uplift >= 0 else '−'}{_number(abs(uplift), 1)}\u00a0pp",
                "uplift_tone": "neutral" if not uplift else ("good" if uplift > 0 else "bad"),
                "revenue": money(report["revenue"], currency),
            }
        )
    return rows
