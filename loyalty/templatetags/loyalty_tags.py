"""Template tags a shop drops into its own templates: ``{% load loyalty_tags %}``."""

from __future__ import annotations

import re

from django import template

from ..selectors import account_summaries, order_points

register = template.Library()

HISTORY_PAGE_PARAM = "history_page"
_HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
DEFAULT_TIER_COLOUR = "#5f6b73"


@register.inclusion_tag("loyalty/account/panel.html", takes_context=True)
def loyalty_account_panel(context, user=None):
    """Balance, tier, rewards, codes, referral link and paginated history: ``{% loyalty_account_panel %}``.

    Renders nothing for visitors who are not members, so any shop can drop it in. The history
    page comes from ``?history_page=N``; the queries do not grow with the ledger.
    """
    request = context.get("request")
    user = user or getattr(request, "user", None)
    page = request.GET.get(HISTORY_PAGE_PARAM) if request is not None else None
    return {
        "summaries": account_summaries(user, history_page=page),
        "request": request,
        "page_param": HISTORY_PAGE_PARAM,
    }


@register.inclusion_tag("loyalty/account/order_points.html", takes_context=True)
def loyalty_order_points(context, order_reference, signup_url="", email=""):
    """What an order brought in points, for the shop's order confirmation page:
    ``{% loyalty_order_points order.number signup_url=register_url email=order.email %}``.

    A member sees the points earned (or "pending until ..."); a visitor looking at a guest order
    is invited to join, with ``signup_url`` (the shop's registration page, given the email).
    """
    from urllib.parse import urlencode

    from django.urls import reverse

    from ..services.guests import guest_claim_token

    request = context.get("request")
    user = getattr(request, "user", None)
    info = order_points(order_reference=str(order_reference), user=user)
    claim_url = ""
    if info and info.status == "guest" and signup_url and email:
        # The signed link proves this visitor saw the order: only they can claim its points.
        token = guest_claim_token(order_reference=str(order_reference), email=email)
        next_url = f"{signup_url}?{urlencode({'email': email})}"
        claim_url = f"{reverse('loyalty:guest_claim', args=[token])}?{urlencode({'next': next_url})}"
    return {"info": info, "claim_url": claim_url, "request": request}


@register.inclusion_tag("loyalty/checkout/points.html", takes_context=True)
def loyalty_checkout_points(context):
    """The cart's "Use my points" control: ``{% loyalty_checkout_points %}`` in the cart or
    checkout template. A form (no JavaScript needed) posting to ``loyalty:checkout_points``;
    the balance, its value, the points usable on this basket and what is used now. Renders
    nothing without a signed-in member, a basket (the adapter's ``checkout_basket``) or a
    points discount in the programme."""
    from ..adapters import get_adapter
    from ..exceptions import LoyaltyError, TierTooLow
    from ..selectors import memberships_for_user
    from ..services.checkout_points import points_discount_quote

    request = context.get("request")
    user = getattr(request, "user", None)
    panels = []
    if request is None or not getattr(user, "is_authenticated", False):
        return {"panels": panels}
    members = [m for m in memberships_for_user(user)]
    adapter = get_adapter() if members else None
    basket = adapter.checkout_basket(request=request) if adapter is not None else None
    for member in members if basket is not None else []:
        if member.program.currency != basket.currency.upper():
            continue
        try:
            quote = points_discount_quote(
                member=member, order_total=basket.total, currency=basket.currency, basket=basket.reference
            )
        except TierTooLow as refusal:
            panels.append({"program": member.program, "member": member, "quote": None, "message": refusal.message})
            continue
        except LoyaltyError:
            continue  # no points discount in this programme now
        # A code the basket no longer carries (the shop took it off) is not "in use": choosing again replaces it.
        applied = quote.applied if quote.applied is not None and quote.applied.code == basket.code else None
        panels.append(
            {
                "program": member.program,
                "member": member,
                "quote": quote,
                "applied": applied,
                "selected": applied.points if applied is not None else quote.max_points,
            }
        )
    return {"panels": panels, "request": request, "next": request.get_full_path()}


def _checkout_redemption(context, code: str):
    """The signed-in member's points-at-checkout redemption whose code is ``code``, or ``None``."""
    from ..models import Redemption, Reward

    request = context.get("request")
    user = getattr(request, "user", None)
    if not code or not getattr(user, "is_authenticated", False):
        return None
    return (
        Redemption.objects.filter(code=code, member__user=user, reward__kind=Reward.Kind.POINTS_DISCOUNT)
        .select_related("program")
        .first()
    )


@register.simple_tag(takes_context=True)
def loyalty_points_label(context, code) -> str:
    """``"500 loyalty points"`` when ``code`` is the customer's points at checkout, else "":
    ``{% loyalty_points_label cart.discount_code as label %}`` names the discount row."""
    from django.utils.formats import number_format
    from django.utils.translation import ngettext

    redemption = _checkout_redemption(context, code)
    if redemption is None:
        return ""
    return ngettext("%(points)s loyalty point", "%(points)s loyalty points", redemption.points) % {
        "points": number_format(redemption.points, force_grouping=True)
    }


@register.simple_tag(takes_context=True)
def loyalty_paid_with_points(context, code) -> str:
    """``"Paid with 500 points (−€5.00)"`` when ``code`` is the customer's points at checkout,
    else "": for the order confirmation (``{% loyalty_paid_with_points order.discount_code as paid %}``)."""
    from ..selectors import paid_with_points

    redemption = _checkout_redemption(context, code)
    if redemption is None:
        return ""
    return paid_with_points(redemption.points, redemption.amount, redemption.program.currency)


@register.filter
def loyalty_money(amount, currency: str) -> str:
    """An amount as loyalty writes money for customers: ``{{ amount|loyalty_money:"EUR" }}`` → "€5.00"."""
    from ..formats import money_text

    return money_text(amount, currency) if amount is not None else ""


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(colour: str) -> float:
    """WCAG 2 relative luminance of a ``#rgb``/``#rrggbb`` colour."""
    hex_digits = colour.lstrip("#")
    if len(hex_digits) == 3:
        hex_digits = "".join(ch * 2 for ch in hex_digits)
    r, g, b = (int(hex_digits[i : i + 2], 16) for i in (0, 2, 4))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast_ratio(first: str, second: str) -> float:
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@register.filter
def tier_colour(value) -> str:
    """A staff-chosen badge colour, or the default one when it is not a hex colour (no CSS injection)."""
    value = (value or "").strip()
    return value if _HEX_COLOUR.match(value) else DEFAULT_TIER_COLOUR


@register.filter
def readable_text_colour(background) -> str:
    """Black or white, whichever contrasts more with ``background``: at least 4.58:1 for any
    colour, so a badge meets WCAG AA for normal text whatever colour staff pick."""
    background = tier_colour(background)
    return "#000000" if contrast_ratio(background, "#000000") >= contrast_ratio(background, "#ffffff") else "#ffffff"


@register.simple_tag(takes_context=True)
def history_page_url(context, number) -> str:
    """The current URL with ``?history_page=number`` (other query parameters kept)."""
    request = context.get("request")
    query = request.GET.copy() if request is not None else None
    if query is None:
        return f"?{HISTORY_PAGE_PARAM}={number}"
    query[HISTORY_PAGE_PARAM] = number
    return f"?{query.urlencode()}"
