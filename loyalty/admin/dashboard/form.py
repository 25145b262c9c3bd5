"""The dashboard's filter form (programme, period) and how its values become a programme and a period."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ...models import Program

PERIOD_CHOICES = [
    ("30", gettext_lazy("Last 30 days")),
    ("90", gettext_lazy("Last 90 days")),
    ("365", gettext_lazy("Last 365 days")),
    ("custom", gettext_lazy("Custom dates")),
]
DEFAULT_DAYS = 365
MAX_CUSTOM_DAYS = 3 * 366  # the monthly charts stay readable


class DashboardForm(forms.Form):
    """Query parameters: ``program``, ``period`` (30/90/365 days or custom) and ``start``/``end`` dates."""

    program = forms.TypedChoiceField(label=gettext_lazy("Programme"), coerce=int, required=False)
    period = forms.ChoiceField(label=gettext_lazy("Period"), choices=PERIOD_CHOICES, required=False)
    start = forms.DateField(
        label=gettext_lazy("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    end = forms.DateField(
        label=gettext_lazy("To (inclusive)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    shown = forms.CharField(required=False, widget=forms.HiddenInput)  # the period the page showed

    def __init__(self, *args, programs: list[Program], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["program"].choices = [
            (program.pk, program.name if program.is_active else _("%(name)s (inactive)") % {"name": program.name})
            for program in programs
        ]

    def clean(self):
        data = super().clean()
        start, end, period = data.get("start"), data.get("end"), data.get("period")
        # Without JavaScript both the select and the dates are sent: dates set a custom period unless
        # the select was changed away from what the page showed (``shown``) to one of the presets.
        picked_preset = period and period != "custom" and data.get("shown") and period != data["shown"]
        custom = period == "custom" or ((start or end) and not picked_preset)
        if not custom:
            data["start"] = data["end"] = None
        elif "start" not in self.errors and "end" not in self.errors:
            if not start or not end:
                raise forms.ValidationError(_("Give both dates of a custom period."), code="incomplete")
            if end < start:
                raise forms.ValidationError(_("The period cannot end before it starts."), code="reversed")
            if (end - start).days + 1 > MAX_CUSTOM_DAYS:
                raise forms.ValidationError(
                    _("A custom period can be at most %(days)d days long.") % {"days": MAX_CUSTOM_DAYS}, code="long"
                )
            data["period"] = "custom"
        return data


def error_messages(form: DashboardForm) -> list[str]:
    """The form's errors as sentences, each with its field's label."""
    messages = []
    for name, errors in form.errors.items():
        prefix = "" if name == NON_FIELD_ERRORS else f"{form.fields[name].label}: "
        messages.extend(prefix + str(error) for error in errors)
    return messages


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def resolve_period(form: DashboardForm) -> tuple[datetime, datetime, str]:
    """``(start, end, period)`` from a validated form; defaults for anything missing or invalid.

    Periods are whole local days: "last N days" ends at the end of today.
    """
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    if data.get("period") == "custom":
        return _midnight(data["start"]), _midnight(data["end"] + timedelta(days=1)), "custom"
    days = int(data.get("period") or DEFAULT_DAYS)
    end = _midnight(timezone.localdate() + timedelta(days=1))
    return end - timedelta(days=days), end, str(days)


def choose_program(form: DashboardForm, programs: list[Program]) -> Program | None:
    """The programme asked for, else the oldest active one, else the oldest."""
    wanted = form.cleaned_data.get("program") if form.is_bound and "program" not in form.errors else None
    by_pk = {program.pk: program for program in programs}
    if wanted in by_pk:
        return by_pk[wanted]
    active = [program for program in programs if program.is_active]
    return (active or programs or [None])[0]
