"""Rendering a campaign email: ``campaign_render`` is the one place (compiled templates, the
layout rendered once per programme and language, tracked links); without a message nothing is
tracked, which is what previews use."""

from __future__ import annotations

import html
import re
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template import Context, Template
from django.template.loader import render_to_string
from django.urls import get_script_prefix, reverse
from django.utils import timezone, translation
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe

from ...conf import loyalty_settings
from ...models import Campaign, Member, Message, Program
from ...staff_templates import staff_template_compile
from ..notifications import email_message, site_url
from .tokens import click_token, tracking_token, unsubscribe_token

if TYPE_CHECKING:  # sending imports this module
    from .sending import IssuedIncentive


LAYOUT_TEMPLATE = "loyalty/emails/campaign_layout.html"


def campaign_language(campaign: Campaign) -> str:
    return campaign.language or settings.LANGUAGE_CODE


def in_language(language: str):
    """``translation.override(language)``, or nothing when it is active already: a batch of
    emails in one language switches once, not twice per email."""
    if translation.get_language() == language:
        return nullcontext()
    return translation.override(language)


# --- rendering -----------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    """A campaign template compiled once per process (keyed on its text: an edit compiles anew),
    in the staff template sandbox (``staff_templates``): raises TemplateSyntaxError, also for
    what the sandbox refuses."""
    return staff_template_compile(source)


def campaign_templates(campaign: Campaign) -> tuple[Template, Template, Template | None]:
    """Compiled subject, text and HTML (``None`` without an HTML version); raises TemplateSyntaxError."""
    html_template = _compiled(campaign.html_template) if campaign.html_template.strip() else None
    return _compiled(campaign.subject), _compiled(campaign.text_template), html_template


def _absolute(path: str) -> str:
    return f"{site_url()}{path}"


_TOKEN_SLOT = "LOYALTY-TOKEN-SLOT"


def _tokened_url(name: str, token: str) -> str:
    """``SITE_URL`` + ``reverse(name, args=[token])``, resolving the route once per process:
    a batch of emails builds three such links per email (unsubscribe, open pixel, clicks)."""
    return _url_pattern(name, get_script_prefix(), site_url()).replace(_TOKEN_SLOT, token)


@lru_cache(maxsize=64)
def _url_pattern(name: str, script_prefix: str, site: str) -> str:
    return f"{site}{reverse(name, args=[_TOKEN_SLOT])}"


def shop_name_for(program: Program) -> str:
    return loyalty_settings.SHOP_NAME or program.name


_LINK = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)


def track_links(body: str, *, message: Message, keep: set[str] = frozenset()) -> str:
    """Route http(s) links to our own site (``SITE_URL``'s host) through the click tracker;
    other links, and those in ``keep`` (the unsubscribe link), stay as they are."""
    own_host = urlsplit(site_url()).netloc.lower()

    def rewrite(match: re.Match) -> str:
        url = html.unescape(match.group(3)).strip()
        parts = urlsplit(url)
        if url in keep or parts.scheme.lower() not in ("http", "https") or parts.netloc.lower() != own_host:
            return match.group(0)
        tracked = _tokened_url("loyalty:track_click", click_token(message, url))
        return f"{match.group(1)}{match.group(2)}{html.escape(tracked)}{match.group(2)}"

    return _LINK.sub(rewrite, body)


@dataclass(frozen=True)
class RenderedEmail:
    """A campaign email as rendered for one member: what ``message_send`` sends and the admin
    preview shows. ``html`` is the full document (the layout around the campaign's HTML) or
    ``None`` when the campaign has none. The text and HTML come out of the template engine
    marked safe: escape them (``|force_escape``) before showing them in a page."""

    subject: str
    text: str
    html: str | None
    headers: dict[str, str]


#: Stands in for the member's token in a preview: the unsubscribe page refuses it as an invalid link.
PREVIEW_TOKEN = "preview"
#: A transparent 1×1 GIF inline, in place of the open pixel: the layout keeps its image, nothing is counted.
PREVIEW_PIXEL = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def _context(
    *, member: Member, message: Message | None, incentive_text: str, incentive_expires_at: datetime | None
) -> dict:
    program = member.program
    user = member.user
    expires_on: date | None = timezone.localdate(incentive_expires_at) if incentive_expires_at else None
    token = PREVIEW_TOKEN if message is None else unsubscribe_token(member, message=message)
    return {
        "first_name": getattr(user, "first_name", "") or "",
        "balance": member.balance,
        "tier": member.tier.name if member.tier_id and member.tier else "",
        "incentive": incentive_text,
        "incentive_expires_on": expires_on,
        "unsubscribe_url": _tokened_url("loyalty:unsubscribe", token),
        "shop_url": f"{site_url()}/",
        "shop_name": shop_name_for(program),
        "program_name": program.name,
    }


def message_context(*, message: Message, member: Member, incentive: IssuedIncentive) -> dict:
    """The variables a campaign's templates may use."""
    return _context(
        member=member, message=message, incentive_text=incentive.text, incentive_expires_at=incentive.expires_at
    )


def campaign_render(
    *,
    campaign: Campaign,
    member: Member,
    message: Message | None = None,
    incentive_text: str = "",
    incentive_expires_at: datetime | None = None,
) -> RenderedEmail:
    """Render ``campaign``'s subject, text and HTML for ``member``, in the campaign's language.
    Pure: reads, writes nothing, sends nothing.

    With a ``message`` the links are the real ones: shop links in the HTML go through the click
    tracker, the layout gets the open pixel, the unsubscribe link carries the member's token.
    Without one (a preview) nothing is tracked: links stay as written, the pixel is an inline
    image, and the unsubscribe link carries ``PREVIEW_TOKEN``, which unsubscribes nobody.
    Raises ``TemplateSyntaxError`` when a template does not compile; an error raised while
    rendering (a filter, a ``{% url %}``) propagates as it is.
    """
    subject_template, text_template, html_template = campaign_templates(campaign)
    with in_language(campaign_language(campaign)):
        ctx = _context(
            member=member,
            message=message,
            incentive_text=incentive_text,
            incentive_expires_at=incentive_expires_at,
        )
        unsubscribe_url = ctx["unsubscribe_url"]
        subject = " ".join(subject_template.render(Context(ctx, autoescape=False)).split())
        text = text_template.render(Context(ctx, autoescape=False))
        body = None
        if html_template is not None:
            inner = html_template.render(Context(ctx, autoescape=True))
            if message is not None:
                inner = track_links(inner, message=message, keep={unsubscribe_url})
                open_url = _tokened_url("loyalty:track_open", tracking_token(message))
            else:
                open_url = PREVIEW_PIXEL
            body = _layout(ctx, subject=subject, body=inner, open_url=open_url)
    headers = {"List-Unsubscribe": f"<{unsubscribe_url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    return RenderedEmail(subject=subject, text=text, html=body, headers=headers)


#: Stand-ins for the per-email values in a layout rendered once (see :func:`_layout`).
_SLOTS = {name: f"\x00loyalty-{name}\x00" for name in ("subject", "body", "open_url", "unsubscribe_url")}
_PER_EMAIL = {"first_name", "balance", "tier", "incentive", "incentive_expires_on", *_SLOTS}


def _layout(ctx: dict, *, subject: str, body: str, open_url: str) -> str:
    """The HTML layout around the campaign's body. The layout only varies per email in the
    subject, the body and two links, so it is rendered once per programme and language with
    stand-ins, which each email then replaces (escaped as the template would). A layout that
    uses those values any other way (a filter on them, say) is rendered in full per email."""
    constant = tuple(sorted((k, str(v)) for k, v in ctx.items() if k not in _PER_EMAIL))
    skeleton = _layout_skeleton(constant, translation.get_language())
    values = {
        "subject": conditional_escape(subject),
        "body": body,  # rendered with autoescape from the campaign's own template
        "open_url": conditional_escape(open_url),
        "unsubscribe_url": conditional_escape(ctx["unsubscribe_url"]),
    }
    if skeleton is not None:
        for name, slot in _SLOTS.items():
            skeleton = skeleton.replace(slot, values[name])
        return skeleton
    return render_to_string(
        LAYOUT_TEMPLATE,
        {
            **ctx,
            "subject": subject,
            "body": mark_safe(body),
            "open_url": open_url,
            "language": translation.get_language(),
        },
    )


@lru_cache(maxsize=64)
def _layout_skeleton(constant: tuple[tuple[str, str], ...], language: str) -> str | None:
    slots = {name: mark_safe(slot) for name, slot in _SLOTS.items()}
    rendered = render_to_string(LAYOUT_TEMPLATE, {**dict(constant), **slots, "language": language})
    if any(rendered.count(slot) != 1 for name, slot in _SLOTS.items() if name != "unsubscribe_url"):
        return None
    return rendered


def message_email(*, message: Message, member: Member, incentive: IssuedIncentive) -> EmailMultiAlternatives:
    """The email for ``message``: text and (when the campaign has one) tracked HTML, with
    RFC 8058 one-click unsubscribe headers, rendered in the campaign's language."""
    rendered = campaign_render(
        campaign=message.campaign,
        member=member,
        message=message,
        incentive_text=incentive.text,
        incentive_expires_at=incentive.expires_at,
    )
    return email_message(rendered, to=getattr(member.user, member.user.get_email_field_name()))
