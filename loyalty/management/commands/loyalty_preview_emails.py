"""Render every member email with a made-up member (never saved) into files, to look at them.

    manage.py loyalty_preview_emails [--out DIR] [--language de]

Writes ``<name>.html``, ``<name>.txt`` and ``<name>.subject.txt`` per email and an
``index.html`` linking them. Reads the first programme if there is one (else an unsaved
sample); writes nothing to the database.
"""

from __future__ import annotations

import html
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from loyalty.models import Campaign, Member, Program, Survey, Tier
from loyalty.services.campaigns import campaign_preview, campaign_sample_member
from loyalty.services.notifications import is_marketing, member_email_render
from loyalty.services.surveys import survey_email_context, survey_url

SAMPLE_CODE = "PREVIEW-CODE"


def sample_member(program: Program) -> Member:
    campaign = Campaign(program=program, name="preview")
    member = campaign_sample_member(campaign=campaign)
    member.referral_code = "ALEX2345"
    member.tier = Tier(program=program, name="Gold", rank=2, colour="#b8860b", multiplier=1.5, benefits="Free shipping")
    return member


def sample_emails(today) -> list[tuple[str, str, dict]]:
    """(file name, template, context) for every member email."""
    soon, later = (today + timedelta(days=3)).isoformat(), (today + timedelta(days=14)).isoformat()
    month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    return [
        ("welcome", "welcome", {}),
        ("points_earned", "points_earned", {"points": 42, "order": "1042"}),
        ("pending_approved", "pending_approved", {"points": 42, "order": "1042"}),
        ("tier_up", "tier_changed", {"direction": "up", "tier": "Gold", "tier_id": None, "previous_tier": "Silver"}),
        ("tier_down", "tier_changed", {"direction": "down", "tier": "Silver", "previous_tier": "Gold"}),
        ("points_expiring", "points_expiring", {"points": 120, "expires_on": later}),
        ("points_last_chance", "points_last_chance", {"points": 120, "expires_on": soon}),
        ("reward_issued", "reward_issued", {"reward": "5 € off", "code": SAMPLE_CODE, "expires_on": later}),
        (
            "reward_code_expiring",
            "reward_code_expiring",
            {"reward": "5 € off", "code": SAMPLE_CODE, "expires_on": soon},
        ),
        ("birthday", "birthday", {"points": 100}),
        ("referral_rewarded", "referral_rewarded", {"points": 500}),
        ("referral_friend_rewarded", "referral_friend_rewarded", {"points": 200}),
        (
            "monthly_statement",
            "monthly_statement",
            {"month": month, "earned": 180, "spent": 500, "expiring": 120, "expiring_by": later},
        ),
        (
            "survey_invitation",
            "survey_invitation",
            # The preview link: the survey page refuses it as an invalid link.
            survey_email_context(survey=Survey(name="preview"), url=survey_url(None), order="1042") | {"points": 50},
        ),
    ]


class Command(BaseCommand):
    help = "Render every loyalty member email with a sample member into files (no database writes)."

    def add_arguments(self, parser):
        parser.add_argument("--out", default="var/email-previews", help="Directory (default: var/email-previews/).")
        parser.add_argument("--language", default=settings.LANGUAGE_CODE, help="Language code, e.g. de.")

    def handle(self, *args, out: str, language: str, **options):
        target = Path(out)
        target.mkdir(parents=True, exist_ok=True)
        program = Program.objects.order_by("pk").first() or Program(name="Rewards", slug="rewards")
        member = sample_member(program)
        rows = []
        for name, template, context in sample_emails(timezone.localdate()):
            rendered = member_email_render(member=member, template=template, context=context, language=language)
            self._write(target, name, rendered.subject, rendered.text, rendered.html)
            rows.append((name, rendered.subject, is_marketing(template)))
        # The re-engagement email: the first campaign's own templates, else the defaults.
        campaign = Campaign.objects.filter(program_id=program.pk).order_by("pk").first() if program.pk else None
        campaign = campaign or Campaign(
            program=program, name="We miss you", incentive=Campaign.Incentive.POINTS, incentive_points=200
        )
        campaign.language = language
        rendered = campaign_preview(campaign=campaign, member=member)
        self._write(target, "re_engagement", rendered.subject, rendered.text, rendered.html)
        rows.append(("re_engagement", rendered.subject, True))
        with translation.override(language):
            self._index(target, rows)
        self.stdout.write(self.style.SUCCESS(f"{len(rows)} emails written to {target}/ (open index.html)."))

    def _write(self, target: Path, name: str, subject: str, text: str, body: str | None) -> None:
        (target / f"{name}.subject.txt").write_text(subject + "\n", encoding="utf-8")
        (target / f"{name}.txt").write_text(text, encoding="utf-8")
        if body is not None:
            (target / f"{name}.html").write_text(body, encoding="utf-8")

    def _index(self, target: Path, rows) -> None:
        items = "\n".join(
            f'<tr><td><a href="{name}.html">{name}</a> · <a href="{name}.txt">txt</a></td>'
            f"<td>{html.escape(subject)}</td><td>{_('marketing') if marketing else _('transactional')}</td></tr>"
            for name, subject, marketing in rows
        )
        page = (
            f'<!doctype html><meta charset="utf-8"><title>{_("Email previews")}</title>'
            f'<h1 style="font-family:sans-serif">{_("Email previews")}</h1>'
            f'<table style="font-family:sans-serif" cellpadding="6">{items}</table>\n'
        )
        (target / "index.html").write_text(page, encoding="utf-8")
