import uuid
from datetime import date, datetime

from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import Member, Program, Reward
from .nps import nps_scale


def _token() -> str:
    return uuid.uuid4().hex


class AdjustPointsForm(forms.Form):
    """``limit``: the most points (absolute value) this user may move at once; ``None``: any."""

    points = forms.IntegerField(
        label=_("Points"),
        help_text=_("Positive to add, negative to take away. A balance cannot go below zero."),
        min_value=-10_000_000,
        max_value=10_000_000,
    )
    reason = forms.CharField(
        label=_("Reason"), max_length=255, help_text=_("Shown to the customer in their points history.")
    )
    token = forms.CharField(widget=forms.HiddenInput, initial=_token, max_length=64)

    def __init__(self, *args, limit: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.limit = limit
        if limit is not None:
            self.fields["points"].help_text = _(
                "Positive to add, negative to take away, at most %(limit)d either way. A balance cannot go below zero."
            ) % {"limit": limit}

    def clean_points(self):
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError(_("Enter a number of points other than zero."))
        if self.limit is not None and abs(points) > self.limit:
            raise forms.ValidationError(
                _("Support agents can adjust at most %(limit)d points at a time; ask a loyalty manager."),
                code="over_limit",
                params={"limit": self.limit},
            )
        return points


def rewards_on_offer(*, program_id: int, now: datetime | None = None) -> QuerySet[Reward]:
    """The programme's rewards that can be issued now: active, inside their window, in stock."""
    now = now or timezone.now()
    return (
        Reward.objects.filter(program_id=program_id, is_active=True)
        .filter(Q(active_from__isnull=True) | Q(active_from__lte=now))
        .filter(Q(active_until__isnull=True) | Q(active_until__gt=now))
        .filter(Q(stock__isnull=True) | Q(stock__gt=0))
        .order_by("points_cost", "name")
    )


class RewardChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Reward) -> str:
        return _("%(name)s (worth %(points)d points)") % {"name": obj.name, "points": obj.points_cost}


class IssueRewardForm(forms.Form):
    """Give a member a reward free of points. ``limit``: the most points the reward may cost."""

    reward = RewardChoiceField(label=_("Reward"), queryset=Reward.objects.none())
    note = forms.CharField(
        label=_("Note"),
        max_length=255,
        required=False,
        help_text=_("Why (kept in the admin's history of this member, not shown to the customer)."),
    )
    token = forms.CharField(widget=forms.HiddenInput, initial=_token, max_length=64)

    def __init__(self, *args, member: Member, limit: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.member, self.limit = member, limit
        self.fields["reward"].queryset = rewards_on_offer(program_id=member.program_id)

    def clean_reward(self) -> Reward:
        reward = self.cleaned_data["reward"]
        if self.limit is not None and reward.points_cost > self.limit:
            raise forms.ValidationError(
                _("Support agents can issue rewards worth at most %(limit)d points; ask a loyalty manager."),
                code="over_limit",
                params={"limit": self.limit},
            )
        return reward


class ConfirmForm(forms.Form):
    """A confirmation page's form: nothing to fill in but the (idempotency) token."""

    token = forms.CharField(widget=forms.HiddenInput, initial=_token, max_length=64)


class LedgerExportForm(forms.Form):
    start = forms.DateField(label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To (inclusive)"), widget=forms.DateInput(attrs={"type": "date"}))
    program = forms.ModelChoiceField(
        label=_("Programme"), queryset=Program.objects.order_by("name"), required=False, empty_label=_("All")
    )

    @staticmethod
    def initial_period(today: date | None = None) -> dict[str, date]:
        """This month so far."""
        today = today or timezone.localdate()
        return {"start": today.replace(day=1), "end": today}

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end < start:
            self.add_error("end", _("The end must not be before the start."))
        return cleaned


class SurveyForm(forms.Form):
    """The survey page's questions: NPS 0-10 and CSAT 1-5 as radio buttons, a comment. Only the
    questions the survey asks are fields; all are optional on their own, one answer is needed."""

    CSAT_LABELS = {
        1: _("Very dissatisfied"),
        2: _("Dissatisfied"),
        3: _("Neither satisfied nor dissatisfied"),
        4: _("Satisfied"),
        5: _("Very satisfied"),
    }

    def __init__(self, *args, survey, **kwargs) -> None:
        from .services.surveys import COMMENT_MAX_LENGTH

        super().__init__(*args, **kwargs)
        self.survey = survey
        if survey.ask_nps:
            self.fields["nps"] = forms.TypedChoiceField(
                label=survey.nps_question or _("How likely are you to recommend us to a friend?"),
                choices=[(str(n), str(n)) for n in nps_scale()],
                coerce=int,
                empty_value=None,
                required=False,
                widget=forms.RadioSelect,
                error_messages={"invalid_choice": _("Choose a score from 0 to 10.")},
            )
        if survey.ask_csat:
            self.fields["csat"] = forms.TypedChoiceField(
                label=survey.csat_question or _("How satisfied are you with your order?"),
                choices=[(str(n), f"{n} · {label}") for n, label in self.CSAT_LABELS.items()],
                coerce=int,
                empty_value=None,
                required=False,
                widget=forms.RadioSelect,
                error_messages={"invalid_choice": _("Choose a rating from 1 to 5.")},
            )
        if survey.ask_comment:
            self.fields["comment"] = forms.CharField(
                label=survey.comment_question or _("Anything you would like to tell us?"),
                required=False,
                max_length=COMMENT_MAX_LENGTH,
                widget=forms.Textarea(attrs={"rows": 5}),
                error_messages={
                    "max_length": _(
                        "Please keep your comment under %(limit_value)d characters (it has %(show_value)d)."
                    )
                },
            )

    def clean(self):
        data = super().clean()
        if not self.errors and data.get("nps") is None and data.get("csat") is None and not data.get("comment"):
            raise forms.ValidationError(_("Please answer at least one question."), code="empty")
        return data
