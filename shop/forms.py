from decimal import Decimal

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.db import IntegrityError, transaction
from django.utils.functional import lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .cart import MAX_QUANTITY
from .models import Order, Product


def _quantity_message(min_value: int) -> str:
    return gettext("Please enter a quantity between %(min)d and %(max)d.") % {"min": min_value, "max": MAX_QUANTITY}


def _quantity_field(min_value: int) -> forms.IntegerField:
    message = lazy(_quantity_message, str)(min_value)
    return forms.IntegerField(
        label=_("Quantity"),
        min_value=min_value,
        max_value=MAX_QUANTITY,
        initial=1,
        error_messages={"invalid": message, "min_value": message, "max_value": message, "required": message},
        widget=forms.NumberInput(attrs={"inputmode": "numeric", "class": "qty-input"}),
    )


def first_error(form: forms.Form) -> str:
    """One message for the whole form, for django.contrib.messages."""
    for errors in form.errors.values():
        if errors:
            return str(errors[0])
    return gettext("Please check your input.")


class AddToCartForm(forms.Form):
    product = forms.ModelChoiceField(
        queryset=Product.objects.filter(is_active=True),
        widget=forms.HiddenInput,
        error_messages={
            "invalid_choice": _("Sorry, that product is not available."),
            "required": _("Sorry, that product is not available."),
        },
    )
    quantity = _quantity_field(min_value=1)


class UpdateCartForm(forms.Form):
    """Set the quantity of a product already in the cart; 0 (or the Remove button) removes it."""

    product = forms.IntegerField(
        widget=forms.HiddenInput,
        min_value=1,
        error_messages={
            "invalid": _("That product is not in your cart."),
            "required": _("That product is not in your cart."),
            "min_value": _("That product is not in your cart."),
        },
    )
    quantity = _quantity_field(min_value=0)
    remove = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, cart, **kwargs):
        super().__init__(*args, **kwargs)
        self.cart = cart
        if self.data.get("remove"):
            self.fields["quantity"].required = False

    def clean_product(self) -> int:
        product_id = self.cleaned_data["product"]
        if product_id not in self.cart:
            raise forms.ValidationError(gettext("That product is not in your cart."))
        return product_id

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("remove"):
            cleaned["quantity"] = 0
            self.errors.pop("quantity", None)
        return cleaned


class CheckoutForm(forms.Form):
    """What every checkout asks: an optional discount code."""

    discount_code = forms.CharField(
        label=_("Discount code"),
        max_length=64,
        required=False,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}
        ),
    )


class GuestCheckoutForm(CheckoutForm):
    email = forms.EmailField(
        label=_("Email address"),
        help_text=_("We send your receipt here. No account needed."),
        error_messages={
            "invalid": _("Please enter a valid email address."),
            "required": _("Please enter your email address."),
        },
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    field_order = ["email", "discount_code"]


class ConfirmCheckoutForm(CheckoutForm):
    """A signed-in customer only confirms (and may give a code); the order uses the account's email."""


class RegisterForm(forms.Form):
    email = forms.EmailField(
        label=_("Email address"),
        error_messages={
            "invalid": _("Please enter a valid email address."),
            "required": _("Please enter your email address."),
        },
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    password = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("At least 8 characters; not too common, not only numbers."),
    )
    first_name = forms.CharField(
        label=_("First name (optional)"),
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if get_user_model()._default_manager.filter(username__iexact=email).exists():
            raise forms.ValidationError(
                gettext("An account with this email already exists. Please sign in instead."), code="taken"
            )
        return email

    def clean(self):
        cleaned = super().clean()
        password, email = cleaned.get("password"), cleaned.get("email")
        if password:
            user = get_user_model()(username=email or "", email=email or "", first_name=cleaned.get("first_name", ""))
            try:
                password_validation.validate_password(password, user)
            except forms.ValidationError as error:
                self.add_error("password", error)
        return cleaned

    def save(self):
        data = self.cleaned_data
        try:
            with transaction.atomic():
                return get_user_model()._default_manager.create_user(
                    username=data["email"],
                    email=data["email"],
                    password=data["password"],
                    first_name=data["first_name"],
                )
        except IntegrityError:  # the same email registered a moment ago
            self.add_error("email", gettext("An account with this email already exists. Please sign in instead."))
            return None


class EmailAuthenticationForm(AuthenticationForm):
    """Sign in with the email address (usernames of customers are their lowercased email)."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": _("Please enter a correct email address and password. Passwords are case-sensitive."),
    }

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = _("Email address")
        self.fields["username"].widget.attrs.update({"autocomplete": "email", "autocapitalize": "none"})

    def clean(self):
        username = self.cleaned_data.get("username")
        if username and "@" in username:
            self.cleaned_data["username"] = username.strip().lower()
        return super().clean()


class RefundForm(forms.Form):
    """A partial (or full) refund of one order, in the admin."""

    amount = forms.DecimalField(
        label=_("Amount"),
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0.01"),
        error_messages={"min_value": _("Enter an amount greater than zero.")},
    )
    reason = forms.CharField(label=_("Reason"), max_length=200, required=False)

    def __init__(self, *args, order: Order, **kwargs):
        super().__init__(*args, **kwargs)
        self.order = order
        self.fields["amount"].max_value = order.refundable_amount
        self.fields["amount"].help_text = _("At most %(amount)s %(currency)s.") % {
            "amount": order.refundable_amount,
            "currency": order.currency,
        }
        self.fields["amount"].widget.attrs.update({"max": str(order.refundable_amount), "step": "0.01", "min": "0.01"})

    def clean_amount(self) -> Decimal:
        amount = self.cleaned_data["amount"]
        if amount > self.order.refundable_amount:
            raise forms.ValidationError(
                gettext("At most %(amount)s %(currency)s can still be refunded.")
                % {"amount": self.order.refundable_amount, "currency": self.order.currency}
            )
        return amount
