"""The shop admin: order actions and the partial refund form, all going through the services."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from shop import services
from shop.models import Order, Product, Refund
from tests.factories import UserFactory

from .helpers import paid_order, pending_order

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:shop_order_changelist"


def run_action(client, action, orders):
    response = client.post(
        reverse(CHANGELIST), {"action": action, "_selected_action": [o.pk for o in orders]}, follow=True
    )
    assert response.status_code == 200
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


def refund_url(order):
    return reverse("admin:shop_order_refund", args=[order.pk])


def test_admin_pages_render(admin_client, soap):
    order = paid_order(soap)
    pending_order(soap, email="x@example.com")
    for url in [
        reverse(CHANGELIST),
        reverse(CHANGELIST) + "?q=x@example.com",
        reverse(CHANGELIST) + "?status__exact=paid",
        reverse("admin:shop_order_change", args=[order.pk]),
        reverse("admin:shop_product_changelist") + "?q=soap",
        reverse("admin:shop_product_add"),
        reverse("admin:shop_refund_changelist"),
    ]:
        assert admin_client.get(url).status_code == 200, url


def test_orders_are_not_added_deleted_or_edited_by_hand(admin_client, soap):
    order = paid_order(soap)
    assert admin_client.get(reverse("admin:shop_order_add")).status_code == 403
    assert admin_client.get(reverse("admin:shop_order_delete", args=[order.pk])).status_code == 403
    page = admin_client.get(reverse("admin:shop_order_change", args=[order.pk])).content.decode()
    assert 'name="_save"' not in page
    assert refund_url(order) in page  # the "Refund…" button


def test_no_refund_button_on_a_pending_order(admin_client, soap):
    order = pending_order(soap)
    page = admin_client.get(reverse("admin:shop_order_change", args=[order.pk])).content.decode()
    assert refund_url(order) not in page


def test_mark_paid_action(admin_client, soap):
    pending, already, cancelled = pending_order(soap), paid_order(soap), pending_order(soap)
    services.cancel_order(order=cancelled)
    messages = run_action(admin_client, "mark_paid", [pending, already, cancelled])
    assert ("success", "1 order was marked as paid.") in messages
    assert ("info", "1 order was already paid.") in messages
    assert ("warning", f"Order {cancelled.number} cannot be paid: it is cancelled.") in messages
    pending.refresh_from_db()
    assert pending.status == Order.Status.PAID


def test_cancel_action(admin_client, soap):
    orders = [pending_order(soap), paid_order(soap)]
    refunded = paid_order(soap)
    services.refund_order(order=refunded)
    messages = run_action(admin_client, "cancel", [*orders, refunded])
    assert ("success", "2 orders were cancelled.") in messages
    assert ("warning", f"Order {refunded.number} cannot be cancelled: it is refunded.") in messages
    assert {o.status for o in Order.objects.filter(pk__in=[o.pk for o in orders])} == {Order.Status.CANCELLED}


def test_refund_in_full_action(admin_client, admin_user, soap, balm):
    first, second, pending = paid_order(soap), paid_order(balm), pending_order(soap)
    messages = run_action(admin_client, "refund_in_full", [first, second, pending])
    assert ("success", "2 orders were refunded in full.") in messages
    assert ("warning", f"Order {pending.number} cannot be refunded: it is awaiting payment.") in messages
    for order in (first, second):
        order.refresh_from_db()
        assert order.status == Order.Status.REFUNDED
        assert order.refunds.get().created_by == admin_user


def test_actions_need_the_change_permission(client, soap):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_order"))
    client.force_login(viewer)
    order = pending_order(soap)
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert 'value="mark_paid"' not in page and 'value="refund_in_full"' not in page
    client.post(reverse(CHANGELIST), {"action": "mark_paid", "_selected_action": [order.pk]})
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert client.get(refund_url(paid_order(soap))).status_code == 403


# --- partial refund ------------------------------------------------------------------


def test_refund_form_partial_then_rest(admin_client, admin_user, soap, balm):
    order = paid_order(soap, balm)  # 20.40
    page = admin_client.get(refund_url(order))
    assert page.status_code == 200
    assert page.context["form"].initial["amount"] == Decimal("20.40")

    response = admin_client.post(refund_url(order), {"amount": "5.40", "reason": "Broken jar"})
    assert response.url == reverse("admin:shop_order_change", args=[order.pk])
    assert [str(m) for m in get_messages(response.wsgi_request)] == [f"Refunded 5.40 EUR on order {order.number}."]
    order.refresh_from_db()
    assert (order.status, order.refunded_total) == (Order.Status.PARTIALLY_REFUNDED, Decimal("5.40"))
    refund = order.refunds.get()
    assert (refund.amount, refund.reason, refund.created_by) == (Decimal("5.40"), "Broken jar", admin_user)

    admin_client.post(refund_url(order), {"amount": "15.00", "reason": ""})
    order.refresh_from_db()
    assert (order.status, order.refunded_total) == (Order.Status.REFUNDED, Decimal("20.40"))


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("7.51", "At most 7.50 EUR can still be refunded."),
        ("0", "Enter an amount greater than zero."),
        ("-1", "Enter an amount greater than zero."),
        ("1.234", "Ensure that there are no more than 2 decimal places."),
        ("abc", "Enter a number."),
        ("", "This field is required."),
    ],
)
def test_refund_form_refuses_bad_amounts(admin_client, soap, amount, error):
    order = paid_order(soap)
    response = admin_client.post(refund_url(order), {"amount": amount})
    assert response.status_code == 200
    assert error in response.content.decode()
    assert Refund.objects.count() == 0


def test_refund_form_of_a_pending_order_goes_back_with_a_warning(admin_client, soap):
    order = pending_order(soap)
    response = admin_client.get(refund_url(order), follow=True)
    assert ("warning", f"Order {order.number} cannot be refunded: it is awaiting payment.") in [
        (m.level_tag, str(m)) for m in response.context["messages"]
    ]
    assert Refund.objects.count() == 0


def test_refund_of_an_unknown_order_is_404(admin_client):
    assert admin_client.get(reverse("admin:shop_order_refund", args=[999999])).status_code == 404


def test_refunds_are_read_only_in_the_admin(admin_client, soap):
    refund = services.refund_order(order=paid_order(soap))
    assert admin_client.get(reverse("admin:shop_refund_add")).status_code == 403
    assert admin_client.get(reverse("admin:shop_refund_delete", args=[refund.pk])).status_code == 403
    page = admin_client.get(reverse("admin:shop_refund_change", args=[refund.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()


def test_product_admin_checks_the_colour(admin_client):
    data = {"name": "Fig Jam", "slug": "fig-jam", "description": "", "price": "4.20", "is_active": "on"}
    response = admin_client.post(reverse("admin:shop_product_add"), {**data, "colour": "red;}"})
    assert response.status_code == 200
    assert "Enter a colour like #5b7f5a." in response.content.decode()
    admin_client.post(reverse("admin:shop_product_add"), {**data, "colour": "#AA3300"})
    assert Product.objects.get(slug="fig-jam").colour == "#aa3300"
