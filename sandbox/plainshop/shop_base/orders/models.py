"""The shop's one order model: no discount model, no refund model."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone


class Order(models.Model):
    class State(models.TextChoices):
        OPEN = "open"
        PAID = "paid"
        VOIDED = "voided"

    reference = models.CharField(max_length=20, unique=True)
    buyer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    buyer_email = models.EmailField()
    subtotal = models.DecimalField(max_digits=10, decimal_places=2)
    shipping_fee = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("4.90"))
    amount_due = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    created = models.DateTimeField(default=timezone.now)
    paid = models.DateTimeField(null=True, blank=True)
    voided = models.DateTimeField(null=True, blank=True)
    refunded = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0.00"))

    def __str__(self) -> str:
        return self.reference
