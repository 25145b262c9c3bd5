import uuid

from django import forms
from django.utils.translation import gettext_lazy as _


class AdjustPointsForm(forms.Form):
    points = forms.IntegerField(
        label=_("Points"),
        help_text=_("Positive to add, negative to take away. A balance cannot go below zero."),
        min_value=-10_000_000,
        max_value=10_000_000,
    )
    reason = forms.CharField(
        label=_("Reason"), max_length=255, help_text=_("Shown to the customer in their points history.")
    )
    token = forms.CharField(widget=forms.HiddenInput, initial=lambda: uuid.uuid4().hex)

    def clean_points(self):
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError(_("Enter a number of points other than zero."))
        return points
