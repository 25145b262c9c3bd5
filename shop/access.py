"""Who may see an order page: its customer, or for a guest order the browser session that placed it."""

from django.http import Http404
from django.utils.translation import gettext as _

from .models import Order

GUEST_ORDERS_SESSION_KEY = "shop_guest_orders"
MAX_REMEMBERED_ORDERS = 50


def remember_guest_order(request, order: Order) -> None:
    numbers = [n for n in request.session.get(GUEST_ORDERS_SESSION_KEY, []) if n != order.number]
    numbers.append(order.number)
    request.session[GUEST_ORDERS_SESSION_KEY] = numbers[-MAX_REMEMBERED_ORDERS:]


def can_view_order(request, order: Order) -> bool:
    if order.user_id is not None:
        return request.user.is_authenticated and request.user.pk == order.user_id
    return order.number in request.session.get(GUEST_ORDERS_SESSION_KEY, [])


def get_order_for_request(request, number: str, *, prefetch: bool = False) -> Order:
    """The order, or 404 for anyone who may not see it (the same answer as for an unknown number)."""
    queryset = Order.objects.all()
    if prefetch:
        queryset = queryset.prefetch_related("lines", "refunds")
    order = queryset.filter(number=number).first()
    if order is None or not can_view_order(request, order):
        raise Http404(_("No such order."))
    return order
