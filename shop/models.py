import secrets
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from shop.compat import check_constraint

MONEY = {"max_digits": 12, "decimal_places": 2}


class Product(models.Model):
    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), unique=True)
    description = models.TextField(_("description"), blank=True)
    price = models.DecimalField(_("price"), validators=[MinValueValidator(Decimal("0.01"))], **MONEY)
    colour = models.CharField(
        _("colour"), max_length=7, default="#5b7f5a", help_text=_("Swatch shown in place of a photo.")
    )
    category = models.CharField(
        _("category"), max_length=100, blank=True, help_text=_("Reported to loyalty with each order, e.g. Pantry.")
    )
    is_active = models.BooleanField(_("on sale"), default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("product")
        verbose_name_plural = _("products")
        constraints = [check_constraint(condition=Q(price__gt=0), name="shop_product_price_positive")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("shop:product_detail", args=[self.slug])


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Awaiting payment")
        PAID = "paid", _("Paid")
        CANCELLED = "cancelled", _("Cancelled")
        PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
        REFUNDED = "refunded", _("Refunded")

    number = models.CharField(_("number"), max_length=20, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("customer"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="orders",
    )
    email = models.EmailField(_("email"))
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.PENDING)
    currency = models.CharField(_("currency"), max_length=3)
    total = models.DecimalField(_("total"), help_text=_("What the customer pays: net of the discount."), **MONEY)
    discount_total = models.DecimalField(_("discount"), default=Decimal("0.00"), **MONEY)
    discount_code = models.CharField(_("discount code"), max_length=64, blank=True)
    refunded_total = models.DecimalField(_("refunded"), default=Decimal("0.00"), **MONEY)
    created_at = models.DateTimeField(_("placed at"), db_index=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        constraints = [
            check_constraint(condition=Q(total__gte=0), name="shop_order_total_not_negative"),
            check_constraint(condition=Q(discount_total__gte=0), name="shop_order_discount_not_negative"),
            check_constraint(
                condition=Q(refunded_total__gte=0) & Q(refunded_total__lte=models.F("total")),
                name="shop_order_refund_within_total",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.number}"

    def get_absolute_url(self) -> str:
        return reverse("shop:order_detail", args=[self.number])

    @property
    def is_guest(self) -> bool:
        return self.user_id is None

    @property
    def refundable_amount(self) -> Decimal:
        return self.total - self.refunded_total

    @property
    def subtotal(self) -> Decimal:
        """The lines' total before the discount."""
        return self.total + self.discount_total


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, null=True, on_delete=models.SET_NULL, related_name="+")
    product_name = models.CharField(_("product"), max_length=200)
    unit_price = models.DecimalField(_("unit price"), **MONEY)
    quantity = models.PositiveIntegerField(_("quantity"), validators=[MinValueValidator(1)])

    class Meta:
        ordering = ["id"]
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")

    def __str__(self) -> str:
        return f"{self.quantity} × {self.product_name}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


class Refund(models.Model):
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="refunds")
    amount = models.DecimalField(_("amount"), **MONEY)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("refunded at"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        constraints = [check_constraint(condition=Q(amount__gt=0), name="shop_refund_amount_positive")]

    def __str__(self) -> str:
        return f"{self.amount} {self.order.currency} on {self.order}"


CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are typed by hand


def new_discount_code(prefix: str = "", length: int = 10) -> str:
    """A random code, e.g. ``"K7QX-MD3P-WA"``: 10 characters give ~50 bits, not guessable."""
    body = "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))
    grouped = "-".join(body[i : i + 4] for i in range(0, length, 4))
    return f"{prefix}-{grouped}" if prefix else grouped


def normalise_code(code: str) -> str:
    return "".join((code or "").split()).upper()


class DiscountCode(models.Model):
    """A code a customer enters at checkout, usable once. Staff create them here or in code."""

    class Kind(models.TextChoices):
        FIXED = "fixed", _("Fixed amount off")
        PERCENT = "percent", _("Percentage off")
        FREE_SHIPPING = "free_shipping", _("Free shipping")
        FREE_PRODUCT = "free_product", _("One product free")

    code = models.CharField(
        _("code"),
        max_length=64,
        unique=True,
        default=new_discount_code,
        help_text=_("What the customer types; letters are stored in capitals and matched regardless of case."),
    )
    kind = models.CharField(_("kind"), max_length=14, choices=Kind.choices, default=Kind.FIXED)
    value = models.DecimalField(
        _("value"),
        default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("Amount off (fixed amount) or percent off (percentage); unused for the other kinds."),
        **MONEY,
    )
    product = models.ForeignKey(
        Product,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("free product"),
        help_text=_("For “one product free”: one unit of it comes off when it is in the cart."),
    )
    min_order_value = models.DecimalField(_("minimum order value"), null=True, blank=True, **MONEY)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True, help_text=_("Empty: no end."))
    is_active = models.BooleanField(_("active"), default=True)
    description = models.CharField(
        _("note"), max_length=200, blank=True, help_text=_("For staff, e.g. where it came from.")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.PROTECT, related_name="discount_codes", verbose_name=_("order")
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("discount code")
        verbose_name_plural = _("discount codes")
        constraints = [
            check_constraint(condition=Q(value__gte=0), name="shop_discountcode_value_not_negative"),
            check_constraint(
                condition=~Q(kind="percent") | Q(value__lte=100), name="shop_discountcode_percent_at_most_100"
            ),
            check_constraint(
                condition=Q(used_at__isnull=True, order__isnull=True) | Q(used_at__isnull=False),
                name="shop_discountcode_order_only_when_used",
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def save(self, *args, **kwargs) -> None:
        self.code = normalise_code(self.code)
        super().save(*args, **kwargs)

    def clean(self) -> None:
        self.code = normalise_code(self.code)
        if not self.code:
            raise ValidationError({"code": _("Enter a code.")})
        if self.kind == self.Kind.FREE_PRODUCT and self.product_id is None:
            raise ValidationError({"product": _("Choose the product that comes free.")})
        if self.kind in (self.Kind.FIXED, self.Kind.PERCENT) and not self.value:
            raise ValidationError({"value": _("Enter the amount or percentage off.")})
        if self.kind == self.Kind.PERCENT and self.value > 100:
            raise ValidationError({"value": _("A percentage cannot be more than 100.")})

    def amount_off(self, subtotal: Decimal, quantities: dict[int, int], prices: dict[int, Decimal]) -> Decimal:
        """The discount on an order of ``subtotal`` (never more than it); 0 if nothing applies.

        ``quantities`` and ``prices`` are keyed by product id. Shipping is free in this shop,
        so free shipping takes nothing off.
        """
        if self.kind == self.Kind.FIXED:
            amount = self.value
        elif self.kind == self.Kind.PERCENT:
            amount = (subtotal * self.value / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        elif self.kind == self.Kind.FREE_PRODUCT and quantities.get(self.product_id):
            amount = prices[self.product_id]
        else:
            amount = Decimal("0.00")
        return min(amount, subtotal).quantize(Decimal("0.01"))
