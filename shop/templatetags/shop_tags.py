import re
from decimal import Decimal, InvalidOperation

from django import template
from django.conf import settings

register = template.Library()

SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}


@register.filter
def money(value, currency: str | None = None) -> str:
    """``12.5|money:"EUR"`` -> "€12.50"; unknown currencies are written after the amount: "12.50 CHF"."""
    if value in (None, ""):
        return ""
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation:
        return ""
    currency = currency or settings.SHOP_CURRENCY
    sign = "−" if amount < 0 else ""
    digits = f"{abs(amount):,.2f}"
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{digits} {currency}"


STATUS_TONES = {
    "pending": "warning",
    "paid": "success",
    "cancelled": "neutral",
    "partially_refunded": "info",
    "refunded": "info",
}


@register.inclusion_tag("shop/includes/status_badge.html")
def status_badge(order):
    return {"label": order.get_status_display(), "tone": STATUS_TONES.get(order.status, "neutral")}


HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
DEFAULT_COLOUR = "#5b7f5a"


@register.filter
def swatch_colour(value) -> str:
    """The product colour if it is a ``#rrggbb`` value, else the default (it goes into a style attribute)."""
    return value if isinstance(value, str) and HEX_COLOUR.match(value) else DEFAULT_COLOUR
