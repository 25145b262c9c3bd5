"""The shopping cart, kept in the session as ``{"<product id>": quantity}``.

The cart stores ids and quantities only: prices are read from the products when the cart
is shown and again when the order is placed, so a cart never holds a stale price.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from .models import Product

SESSION_KEY = "shop_cart"
REFERENCE_KEY = "shop_cart_reference"
CODE_KEY = "shop_cart_code"
MAX_QUANTITY = 99


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def line_total(self) -> Decimal:
        return self.product.price * self.quantity


class Cart:
    def __init__(self, request) -> None:
        self.session = request.session
        self._items: dict[str, int] = self._clean(self.session.get(SESSION_KEY))
        self._lines: list[CartLine] | None = None

    @staticmethod
    def _clean(raw) -> dict[str, int]:
        """Keep only well-formed entries (the session may hold an older or damaged cart)."""
        items: dict[str, int] = {}
        if not isinstance(raw, dict):
            return items
        for key, qty in raw.items():
            try:
                pid, qty = int(key), int(qty)
            except (TypeError, ValueError):
                continue
            if pid > 0 and qty > 0:
                items[str(pid)] = min(qty, MAX_QUANTITY)
        return items

    def _save(self) -> None:
        self.session[SESSION_KEY] = dict(self._items)
        self.session.modified = True
        self._lines = None

    # --- changes --------------------------------------------------------------------

    def add(self, product: Product | int, quantity: int = 1) -> int:
        """Add ``quantity`` (>= 1) of a product; return the new quantity (capped at MAX_QUANTITY)."""
        if quantity < 1:
            raise ValueError("quantity must be at least 1")
        key = str(getattr(product, "pk", product))
        self._items[key] = min(self._items.get(key, 0) + quantity, MAX_QUANTITY)
        self._save()
        return self._items[key]

    def update(self, product: Product | int, quantity: int) -> None:
        """Set the quantity of a product; 0 removes it."""
        if quantity < 0:
            raise ValueError("quantity must not be negative")
        if quantity == 0:
            self.remove(product)
            return
        self._items[str(getattr(product, "pk", product))] = min(quantity, MAX_QUANTITY)
        self._save()

    def remove(self, product: Product | int) -> None:
        if self._items.pop(str(getattr(product, "pk", product)), None) is not None:
            self._save()

    def clear(self) -> None:
        """Empty the cart; its reference and applied code go with it (the next cart is a new one)."""
        self._items = {}
        for key in (SESSION_KEY, REFERENCE_KEY, CODE_KEY):
            self.session.pop(key, None)
        self.session.modified = True
        self._lines = None

    # --- a discount applied to the cart by the site (not typed at checkout) ------------

    @property
    def reference(self) -> str:
        """A random id of this cart, made when first asked for and kept until the cart is cleared:
        what a discount applied to the cart (the project's glue) is tied to."""
        reference = self.session.get(REFERENCE_KEY)
        if not isinstance(reference, str) or not reference:
            reference = secrets.token_urlsafe(12)
            self.session[REFERENCE_KEY] = reference
            self.session.modified = True
        return reference

    @property
    def discount_code(self) -> str:
        """The discount code applied to the cart for the customer ("" for none); checkout uses it."""
        code = self.session.get(CODE_KEY)
        return code if isinstance(code, str) else ""

    def set_discount_code(self, code: str | None) -> None:
        """Apply ``code`` to the cart (replacing any), or take it off with ``None``."""
        if code:
            self.session[CODE_KEY] = code
        else:
            self.session.pop(CODE_KEY, None)
        self.session.modified = True

    def remove_unavailable(self) -> list[str]:
        """Drop products that were deleted or taken off sale; return the names of those still known."""
        available = {str(line.product.pk) for line in self.lines() if line.product.is_active}
        gone = [pid for pid in self._items if pid not in available]
        if not gone:
            return []
        names = [line.product.name for line in self.lines() if str(line.product.pk) in gone]
        for pid in gone:
            del self._items[pid]
        self._save()
        return names

    # --- reads ----------------------------------------------------------------------

    def __contains__(self, product: Product | int) -> bool:
        return str(getattr(product, "pk", product)) in self._items

    def __len__(self) -> int:
        """The number of items (sum of quantities); needs no database query."""
        return sum(self._items.values())

    @property
    def count(self) -> int:
        return len(self)

    def is_empty(self) -> bool:
        return not self._items

    def quantity(self, product: Product | int) -> int:
        return self._items.get(str(getattr(product, "pk", product)), 0)

    def items(self) -> dict[int, int]:
        """``{product_id: quantity}`` as :func:`shop.services.place_order` expects it."""
        return {int(pid): qty for pid, qty in self._items.items()}

    def lines(self) -> list[CartLine]:
        """The cart's lines with their products, loaded in one query (cached until the cart changes).

        Products that no longer exist are left out; products taken off sale are included
        (``line.product.is_active`` is False) so the caller can say so.
        """
        if self._lines is None:
            products = Product.objects.in_bulk([int(pid) for pid in self._items])
            self._lines = [
                CartLine(product=products[int(pid)], quantity=qty)
                for pid, qty in self._items.items()
                if int(pid) in products
            ]
        return self._lines

    def __iter__(self) -> Iterator[CartLine]:
        return iter(self.lines())

    @property
    def total(self) -> Decimal:
        return sum((line.line_total for line in self.lines() if line.product.is_active), Decimal("0.00"))
