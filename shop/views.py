"""The demo shop's pages. Views only read requests and render; order changes go through ``services``."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST
from django.views.generic import ListView

from . import services
from .access import get_order_for_request, remember_guest_order
from .cart import Cart
from .exceptions import InvalidDiscountCode, ShopError
from .forms import (
    AddToCartForm,
    ConfirmCheckoutForm,
    EmailAuthenticationForm,
    GuestCheckoutForm,
    RegisterForm,
    UpdateCartForm,
    first_error,
)
from .models import Order, Product

ORDERS_PER_PAGE = 10


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def _warn_removed(request: HttpRequest, cart: Cart) -> bool:
    """Drop products no longer on sale from the cart and say so; True if the cart changed."""
    names = cart.remove_unavailable()
    if names:
        messages.warning(
            request,
            ngettext(
                "%(names)s is no longer available and was removed from your cart.",
                "%(names)s are no longer available and were removed from your cart.",
                len(names),
            )
            % {"names": ", ".join(names)},
        )
    return bool(names)


# --- catalogue ------------------------------------------------------------------------


class ProductListView(ListView):
    template_name = "shop/product_list.html"
    context_object_name = "products"
    paginate_by = 24

    def get_queryset(self):
        return Product.objects.filter(is_active=True)


def product_detail(request: HttpRequest, slug: str) -> HttpResponse:
    product = get_object_or_404(Product, slug=slug, is_active=True)
    form = AddToCartForm(initial={"product": product.pk, "quantity": 1})
    in_cart = Cart(request).quantity(product)
    return render(request, "shop/product_detail.html", {"product": product, "form": form, "in_cart": in_cart})


# --- cart -----------------------------------------------------------------------------


def _cart_discount(request: HttpRequest, cart: Cart) -> dict:
    """What the discount applied to the cart (by the site, not typed) takes off; a code that no
    longer applies (expired, or the cart is now too small for it) is taken off the cart."""
    if not cart.discount_code:
        return {}
    preview = _discount_preview(cart, cart.discount_code)
    if "discount_error" in preview:
        cart.set_discount_code(None)
        messages.warning(request, _("The discount on your cart no longer applies to it and was taken off."))
        return {}
    return {**preview, "discount_from_cart": True}


def cart_detail(request: HttpRequest) -> HttpResponse:
    cart = Cart(request)
    _warn_removed(request, cart)
    return render(request, "shop/cart.html", {"cart": cart, **_cart_discount(request, cart)})


@require_POST
def cart_add(request: HttpRequest) -> HttpResponse:
    back = _safe_next(request, reverse("shop:product_list"))
    form = AddToCartForm(request.POST)
    if not form.is_valid():
        messages.error(request, first_error(form))
        return redirect(back)
    product, quantity = form.cleaned_data["product"], form.cleaned_data["quantity"]
    Cart(request).add(product, quantity)
    messages.success(
        request,
        ngettext("Added %(quantity)d × %(name)s to your cart.", "Added %(quantity)d × %(name)s to your cart.", quantity)
        % {"quantity": quantity, "name": product.name},
    )
    return redirect(back)


@require_POST
def cart_update(request: HttpRequest) -> HttpResponse:
    cart = Cart(request)
    form = UpdateCartForm(request.POST, cart=cart)
    if not form.is_valid():
        messages.error(request, first_error(form))
        return redirect("shop:cart")
    product_id, quantity = form.cleaned_data["product"], form.cleaned_data["quantity"]
    cart.update(product_id, quantity)
    if quantity == 0:
        messages.success(request, _("The product was removed from your cart."))
    else:
        messages.success(request, _("Your cart was updated."))
    return redirect("shop:cart")


# --- checkout and payment -------------------------------------------------------------


def _discount_preview(cart: Cart, code: str) -> dict:
    """What ``code`` would take off the cart, for the checkout page (nothing is reserved)."""
    lines = [line for line in cart.lines() if line.product.is_active]
    try:
        discount, amount = services.discount_check(
            code=code,
            quantities={line.product.pk: line.quantity for line in lines},
            prices={line.product.pk: line.product.price for line in lines},
        )
    except ShopError as error:
        return {"discount_error": str(error)}
    return {"discount": discount, "discount_amount": amount, "total_after_discount": cart.total - amount}


@require_http_methods(["GET", "HEAD", "POST"])
def checkout(request: HttpRequest) -> HttpResponse:
    cart = Cart(request)
    cart_changed = _warn_removed(request, cart)
    if cart.is_empty():
        messages.info(request, _("Your cart is empty."))
        return redirect("shop:cart")

    signed_in = request.user.is_authenticated
    needs_email = not signed_in or not request.user.email
    form_class = GuestCheckoutForm if needs_email else ConfirmCheckoutForm
    posted = request.method == "POST"
    code = request.POST.get("discount_code", "").strip() if posted else ""
    context = {"cart": cart, "needs_email": needs_email}

    # "Apply" only shows what the code takes off; placing the order checks it again.
    # If the cart just changed, show it again instead of ordering something the customer did not see.
    # A discount applied to the cart (points used in the cart) stands in for a typed code.
    cart_code = cart.discount_code
    one_discount = _("Your cart already has a discount: take it off to use a code instead.")
    if posted and "apply_code" not in request.POST and not cart_changed:
        form = form_class(request.POST)
        if not form.is_valid():
            messages.error(request, first_error(form))
        elif cart_code and form.cleaned_data["discount_code"]:
            context["discount_error"] = one_discount
        else:
            try:
                order = services.place_order(
                    items=cart.items(),
                    user=request.user if signed_in else None,
                    email=form.cleaned_data.get("email", ""),
                    discount_code=form.cleaned_data["discount_code"] or cart_code,
                )
            except InvalidDiscountCode as error:
                if form.cleaned_data["discount_code"]:
                    context["discount_error"] = str(error)
                else:  # the cart's own discount no longer applies: said once, and taken off
                    cart.set_discount_code(None)
                    messages.warning(request, _("The discount on your cart no longer applies to it and was taken off."))
            except ShopError as error:
                messages.error(request, str(error))
            else:
                cart.clear()
                if order.is_guest:
                    remember_guest_order(request, order)
                return redirect("shop:order_pay", number=order.number)
    else:
        form = form_class(initial={"email": request.POST.get("email", ""), "discount_code": code} if posted else None)
        if posted and "apply_code" in request.POST and not code:
            context["discount_error"] = _("Please enter a discount code.")
        elif code and cart_code:
            context["discount_error"] = one_discount

    if code and "discount_error" not in context:
        context.update(_discount_preview(cart, code))
    elif cart_code:
        context.update(_cart_discount(request, cart))
    return render(request, "shop/checkout.html", {**context, "form": form})


@require_http_methods(["GET", "HEAD", "POST"])
def order_pay(request: HttpRequest, number: str) -> HttpResponse:
    order = get_order_for_request(request, number, prefetch=True)
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "pay":
                services.mark_paid(order=order)
                messages.success(request, _("Thank you! Your payment was received."))
            elif action == "cancel":
                services.cancel_pending_order(order=order)
                messages.info(request, _("Your order was cancelled. Nothing was charged."))
            else:
                messages.error(request, _("Please choose whether to pay or to cancel the order."))
                return redirect("shop:order_pay", number=order.number)
        except ShopError as error:
            messages.error(request, str(error))
        return redirect("shop:order_detail", number=order.number)

    if order.status != Order.Status.PENDING:
        return redirect("shop:order_detail", number=order.number)
    return render(request, "shop/order_pay.html", {"order": order})


def order_detail(request: HttpRequest, number: str) -> HttpResponse:
    order = get_order_for_request(request, number, prefetch=True)
    return render(request, "shop/order_detail.html", {"order": order})


# --- account --------------------------------------------------------------------------


@login_required
def account(request: HttpRequest) -> HttpResponse:
    orders = request.user.orders.annotate(item_count=Sum("lines__quantity")).order_by("-created_at", "-id")
    page = Paginator(orders, ORDERS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "shop/account.html", {"page_obj": page, "orders": page.object_list})


@require_http_methods(["GET", "HEAD", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("shop:account")
    data = request.POST if request.method == "POST" else None
    form = RegisterForm(data, initial={"email": request.GET.get("email", "")})
    if request.method == "POST" and form.is_valid():
        user = form.save()
        if user is not None:
            login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
            messages.success(request, _("Welcome! Your account is ready."))
            return redirect(_safe_next(request, reverse("shop:account")))
    return render(request, "registration/register.html", {"form": form, "next": _safe_next(request, "")})


class LoginView(auth_views.LoginView):
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True
