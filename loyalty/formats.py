"""Money in customers' words, for texts loyalty writes itself (checkout, history, receipts)."""

from __future__ import annotations

from decimal import Decimal

from django.utils.formats import number_format

#: Currencies customers know by their sign; any other shows its ISO code.
SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CHF": "CHF", "SEK": "kr", "DKK": "kr", "NOK": "kr"}


def money_text(amount: Decimal, currency: str) -> str:
    """``5.00 €`` (``5,00 €`` in German or Italian): the amount in the active language, then the
    currency's sign. A non-breaking space keeps the two on one line."""
    sign = SYMBOLS.get((currency or "").upper(), currency)
    return f"{number_format(amount, 2, force_grouping=True)}\u00a0{sign}"
