from django.conf import settings

from .cart import Cart


def shop(request) -> dict:
    """The shop's name and currency, and the number of items in the cart (read from the session only)."""
    has_session = hasattr(request, "session")
    return {
        "shop_name": settings.SHOP_NAME,
        "currency": settings.SHOP_CURRENCY,
        "cart_count": len(Cart(request)) if has_session else 0,
    }
