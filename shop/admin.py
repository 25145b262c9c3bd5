"""Admin of the demo shop. Orders change state only through ``shop.services``."""

import re

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from . import services
from .exceptions import ShopError
from .forms import RefundForm
from .models import DiscountCode, Order, OrderLine, Product, Refund

REFUNDABLE = (Order.Status.PAID, Order.Status.PARTIALLY_REFUNDED)


class ProductAdminForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = ["name", "slug", "description", "price", "colour", "is_active"]
        widgets = {"colour": forms.TextInput(attrs={"type": "color"})}

    def clean_colour(self) -> str:
        colour = self.cleaned_data["colour"]
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour or ""):
            raise forms.ValidationError(gettext("Enter a colour like #5b7f5a."))
        return colour.lower()


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    form = ProductAdminForm
    list_display = ["name", "swatch", "price", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}

    @admin.display(description=_("colour"))
    def swatch(self, obj: Product) -> str:
        return format_html(
            '<span style="display:inline-block;width:1.4em;height:1.4em;border-radius:4px;'
            'border:1px solid #0002;background:{}" title="{}"></span>',
            obj.colour if re.fullmatch(r"#[0-9a-fA-F]{6}", obj.colour or "") else "#ffffff",
            obj.colour,
        )


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = ["product_name", "unit_price", "quantity", "line_total"]
    readonly_fields = fields

    @admin.display(description=_("line total"))
    def line_total(self, obj: OrderLine):
        return obj.line_total


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ["amount", "reason", "created_at", "created_by"]
    readonly_fields = fields


def _run_per_order(queryset, operation, *, skip_if=None) -> tuple[int, int, list[str]]:
    """Call ``operation(order)`` for each order; return (done, skipped, refusal messages)."""
    done = skipped = 0
    failures: list[str] = []
    for order in queryset.order_by("pk"):
        if skip_if is not None and skip_if(order):
            skipped += 1
            continue
        try:
            operation(order)
        except ShopError as error:
            failures.append(str(error))
        else:
            done += 1
    return done, skipped, failures


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["number", "email", "status", "total", "refunded_total", "created_at", "paid_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["number", "email"]
    date_hierarchy = "created_at"
    list_select_related = ["user"]
    readonly_fields = [
        "number",
        "user",
        "email",
        "status",
        "currency",
        "total",
        "discount_total",
        "discount_code",
        "refunded_total",
        "created_at",
        "paid_at",
        "cancelled_at",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "number",
                    "status",
                    ("total", "refunded_total", "currency"),
                    ("discount_total", "discount_code"),
                ]
            },
        ),
        (_("Customer"), {"fields": ["user", "email"]}),
        (_("Dates"), {"fields": ["created_at", "paid_at", "cancelled_at"]}),
    ]
    inlines = [OrderLineInline, RefundInline]
    actions = ["mark_paid", "cancel", "refund_in_full"]

    # Orders are created by checkout and changed by the services, never edited by hand.
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    # --- actions ------------------------------------------------------------------

    def _report(self, request, done: str | None, skipped: str | None, failures: list[str]) -> None:
        if done:
            self.message_user(request, done, messages.SUCCESS)
        if skipped:
            self.message_user(request, skipped, messages.INFO)
        for failure in failures:
            self.message_user(request, failure, messages.WARNING)

    @admin.action(description=_("Mark selected orders as paid"), permissions=["change"])
    def mark_paid(self, request, queryset) -> None:
        done, skipped, failures = _run_per_order(
            queryset,
            lambda order: services.mark_paid(order=order),
            skip_if=lambda order: order.status == Order.Status.PAID,
        )
        self._report(
            request,
            done
            and ngettext("%(count)d order was marked as paid.", "%(count)d orders were marked as paid.", done)
            % {"count": done},
            skipped
            and ngettext("%(count)d order was already paid.", "%(count)d orders were already paid.", skipped)
            % {"count": skipped},
            failures,
        )

    @admin.action(description=_("Cancel selected orders"), permissions=["change"])
    def cancel(self, request, queryset) -> None:
        done, skipped, failures = _run_per_order(
            queryset,
            lambda order: services.cancel_order(order=order),
            skip_if=lambda order: order.status == Order.Status.CANCELLED,
        )
        self._report(
            request,
            done
            and ngettext("%(count)d order was cancelled.", "%(count)d orders were cancelled.", done) % {"count": done},
            skipped
            and ngettext("%(count)d order was already cancelled.", "%(count)d orders were already cancelled.", skipped)
            % {"count": skipped},
            failures,
        )

    @admin.action(description=_("Refund selected orders in full"), permissions=["change"])
    def refund_in_full(self, request, queryset) -> None:
        reason = gettext("Refunded in full from the admin.")
        done, _skipped, failures = _run_per_order(
            queryset, lambda order: services.refund_order(order=order, reason=reason, by=request.user)
        )
        self._report(
            request,
            done
            and ngettext("%(count)d order was refunded in full.", "%(count)d orders were refunded in full.", done)
            % {"count": done},
            None,
            failures,
        )

    # --- partial refund view --------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="{}_{}_refund".format(*info),
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        order = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "can_refund": order is not None
            and order.status in REFUNDABLE
            and self.has_change_permission(request, order),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        order = self.get_object(request, object_id)
        if order is None:
            raise Http404(gettext("No such order."))
        if not self.has_change_permission(request, order):
            raise PermissionDenied
        change_url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=[order.pk],
            current_app=self.admin_site.name,
        )
        if order.status not in REFUNDABLE:
            self.message_user(
                request,
                gettext("Order %(number)s cannot be refunded: it is %(status)s.")
                % {"number": order.number, "status": order.get_status_display().lower()},
                messages.WARNING,
            )
            return HttpResponseRedirect(change_url)

        form = RefundForm(request.POST or None, order=order, initial={"amount": order.refundable_amount})
        if request.method == "POST" and form.is_valid():
            try:
                refund = services.refund_order(
                    order=order, amount=form.cleaned_data["amount"], reason=form.cleaned_data["reason"], by=request.user
                )
            except ShopError as error:
                form.add_error(None, str(error))
            else:
                self.message_user(
                    request,
                    gettext("Refunded %(amount)s %(currency)s on order %(number)s.")
                    % {"amount": refund.amount, "currency": order.currency, "number": order.number},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(change_url)

        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Refund order %(number)s") % {"number": order.number},
            "opts": self.opts,
            "original": order,
            "order": order,
            "form": form,
            "change_url": change_url,
            "refunds": order.refunds.select_related("created_by"),
            "has_view_permission": self.has_view_permission(request, order),
        }
        return TemplateResponse(request, "admin/shop/order/refund.html", context)


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin):
    list_display = ["order", "amount", "reason", "created_at", "created_by"]
    list_select_related = ["order", "created_by"]
    search_fields = ["order__number", "order__email", "reason"]
    date_hierarchy = "created_at"
    readonly_fields = ["order", "amount", "reason", "created_at", "created_by"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DiscountCode)
class DiscountCodeAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "kind",
        "value",
        "product",
        "min_order_value",
        "valid_until",
        "is_active",
        "used_at",
        "order",
    ]
    list_filter = ["kind", "is_active", ("used_at", admin.EmptyFieldListFilter), "valid_until"]
    search_fields = ["code", "description", "order__number", "order__email"]
    list_select_related = ["order", "product"]
    date_hierarchy = "created_at"
    autocomplete_fields = ["product"]
    readonly_fields = ["created_at", "used_at", "order"]
    fieldsets = [
        (None, {"fields": ["code", "kind", "value", "product", "description"]}),
        (_("Conditions"), {"fields": ["min_order_value", "valid_until", "is_active"]}),
        (_("Use"), {"fields": ["created_at", "used_at", "order"]}),
    ]
    actions = ["deactivate"]

    def get_readonly_fields(self, request, obj=None):
        # A code that was used is a record: only its switch may change.
        if obj is not None and obj.used_at is not None:
            return [f.name for f in self.opts.fields if f.name not in ("id", "is_active")]
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or obj.used_at is None)

    @admin.action(description=_("Deactivate selected codes"), permissions=["change"])
    def deactivate(self, request, queryset) -> None:
        count = queryset.filter(is_active=True).update(is_active=False)
        self.message_user(
            request,
            ngettext("%(count)d code was deactivated.", "%(count)d codes were deactivated.", count) % {"count": count},
            messages.SUCCESS,
        )
