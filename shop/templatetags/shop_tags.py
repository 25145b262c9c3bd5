import re
from decimal import Decimal, InvalidOperation

from django import template
from django.conf import settings
from django.utils.formats import number_format
from django.utils.translation import get_language

register = template.Library()

SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}
# Languages that write the symbol before the amount ("€1,234.50"); the others after it ("1.234,50 €").
SYMBOL_FIRST_LANGUAGES = {"en"}
NBSP = "\u00a0"


@register.filter
def money(value, currency: str | None = None) -> str:
    """An amount in the active language's number format.

    English: ``12.5|money:"EUR"`` -> "€12.50", "€1,234.50"; German and Italian: "1.234,50 €"
    (a non-breaking space keeps the symbol with the amount). Currencies without a symbol here
    are written after the amount in every language: "12.50 CHF", "12,50 CHF".
    """
    if value in (None, ""):
        return ""
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation:
        return ""
    currency = currency or settings.SHOP_CURRENCY
    sign = "−" if amount < 0 else ""
    digits = number_format(abs(amount), decimal_pos=2, force_grouping=True, use_l10n=True)
    symbol = SYMBOLS.get(currency)
    language = (get_language() or settings.LANGUAGE_CODE).split("-")[0]
    if not symbol:
        return f"{sign}{digits} {currency}"
    if language in SYMBOL_FIRST_LANGUAGES:
        return f"{sign}{symbol}{digits}"
    return f"{sign}{digits}{NBSP}{symbol}"


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
