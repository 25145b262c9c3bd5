class ShopError(Exception):
    """A refused order operation; the message is safe to show to a customer or staff."""


class OrderStateError(ShopError):
    pass


class EmptyCart(ShopError):
    pass


class InvalidDiscountCode(ShopError):
    """The code cannot be used for this order; the message says why."""
