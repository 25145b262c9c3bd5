"""Money in customers' words, for texts loyalty writes itself (checkout, history, receipts)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.utils.formats import number_format
from django.utils.translation import get_language

#: Currencies customers know by their sign; any other is written as its ISO code after the amount.
SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}
#: Languages that write the sign before the amount ("€5.00"); the others after it ("5,00 €").
SYMBOL_FIRST_LANGUAGES = {"en"}
NBSP = "\u00a0"


def money_text(amount: Decimal, currency: str) -> str:
    """``€5.00`` in English, ``5,00 €`` in German or Italian, ``5.00 CHF``: as shops usually
    write prices, so loyalty's lines sit well next to the shop's own totals."""
    digits = number_format(amount, 2, force_grouping=True)
    sign = SYMBOLS.get((currency or "").upper())
    if sign is None:
        return f"{digits}{NBSP}{currency}"
    language = (get_language() or settings.LANGUAGE_CODE).split("-")[0]
    return f"{sign}{digits}" if language in SYMBOL_FIRST_LANGUAGES else f"{digits}{NBSP}{sign}"
