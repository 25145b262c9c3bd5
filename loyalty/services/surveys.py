"""Post-purchase satisfaction surveys: who is asked, the email, the signed link, the answer.

- ``surveys_send_due`` (hourly beat task) selects in SQL, per active survey, the paid orders
  that became due (paid between ``delay + window`` and ``delay`` days ago) of members a
  marketing email may reach, at most the latest order per member and none for a member asked
  within ``min_days_between`` days; it writes one ``SurveyInvitation`` per order (the unique
  order makes a rerun add nothing) and, in the same transaction, its email in the outbox
  (``services.outbox``), which sends it after checking consent and the order again.
- The email links to ``/loyalty/survey/<token>/``: a signed, time-limited token
  (:data:`LINK_MAX_AGE`) that is the customer's credential; no login needed.
- ``survey_response_submit`` stores THE answer for the order (one per order), editable for
  :data:`EDIT_WINDOW` after the first submit, and pays the programme's "Survey answered"
  earning rules once, when the answer is first stored.

Lock order is member, then invitation (as in campaigns: member, then message).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from ..config_cache import paying_rules
from ..exceptions import LoyaltyError
from ..models import EarningRule, Member, PointsEntry, Purchase, Survey, SurveyInvitation, SurveyResponse
from ..nps import NPS_MAX, NPS_MIN, is_detractor, nps_scale
from . import feedback
from .campaigns import PREVIEW_TOKEN, marketing_reachable, marketing_unreachable_reason
from .notifications import MemberEmail, member_email_render, member_language, site_url
from .outbox import SURVEY as SURVEY_EMAIL
from .outbox import emails_queue, outbox_nudge_on_commit, outbox_row
from .rules import _bonus

logger = logging.getLogger("loyalty.surveys")

Status = SurveyInvitation.Status
CHUNK_SIZE = 1000
TOKEN_SALT = "loyalty.surveys.link"
#: How long the link in a survey email works.
LINK_MAX_AGE = timedelta(days=60)
#: How long after the first submit an answer may still be changed.
EDIT_WINDOW = timedelta(hours=24)
COMMENT_MAX_LENGTH = 4000
#: Orders in these states are surveyed; refunded and cancelled ones are not.
SURVEYED_STATUSES = Purchase.KEPT_STATUSES
TEMPLATE = "survey_invitation"
NPS_SCALE = nps_scale()


class SurveyError(LoyaltyError):
    code = "survey_error"


class SurveyLinkInvalid(SurveyError):
    """A survey link that is garbled, changed, signed for something else, expired (code
    ``survey_link_expired``) or whose invitation is gone (code ``survey_not_found``)."""

    code = "survey_link_invalid"


class SurveyAnswerInvalid(SurveyError):
    """The answer cannot be stored as given; ``extra["field"]`` names the question (or ``None``)."""

    code = "survey_answer_invalid"


class SurveyAlreadyAnswered(SurveyError):
    """The order's answer was given more than :data:`EDIT_WINDOW` ago and can no longer change."""

    code = "survey_already_answered"


# --- selecting and queueing ----------------------------------------------------------------


def survey_due_purchases(*, survey: Survey, now: datetime):
    """The purchases ``survey`` would invite for now (one query): paid (or partly refunded)
    orders of reachable members, paid in ``[now - delay - window, now - delay]``, not invited
    yet, the member not invited within ``min_days_between`` days, and only each member's
    latest such order (the others of a burst of orders are never surveyed)."""
    newest = now - timedelta(days=survey.delay_days)
    oldest = newest - timedelta(days=survey.window_days)
    in_window = Purchase.objects.filter(
        program_id=survey.program_id,
        status__in=SURVEYED_STATUSES,
        occurred_at__gte=oldest,
        occurred_at__lte=newest,
    )
    later = in_window.filter(member_id=OuterRef("member_id")).filter(
        Q(occurred_at__gt=OuterRef("occurred_at")) | Q(occurred_at=OuterRef("occurred_at"), pk__gt=OuterRef("pk"))
    )
    invited = SurveyInvitation.objects.filter(purchase_id=OuterRef("pk"))
    recently_asked = SurveyInvitation.objects.filter(
        member_id=OuterRef("member_id"), created_at__gt=now - timedelta(days=survey.min_days_between)
    )
    reachable = marketing_reachable(Member.objects.filter(program_id=survey.program_id))
    return in_window.filter(member_id__in=reachable.values("pk")).filter(
        ~Exists(later), ~Exists(invited), ~Exists(recently_asked)
    )


def survey_select(*, survey: Survey, now: datetime | None = None) -> int:
    """Write this run's invitations for ``survey`` and enqueue their send tasks on commit;
    returns how many were written. A survey or programme switched off selects nothing. Runs
    of one survey take turns (a row lock on it)."""
    now = now or timezone.now()
    selected = 0
    with transaction.atomic():
        current = Survey.objects.select_for_update().select_related("program").filter(pk=survey.pk).first()
        if current is None or not current.is_active or not current.program.is_active:
            return 0
        selection = survey_due_purchases(survey=current, now=now).order_by("pk")
        last_id = 0
        while chunk := list(selection.filter(pk__gt=last_id).values_list("pk", "member_id")[:CHUNK_SIZE]):
            SurveyInvitation.objects.bulk_create(
                [
                    SurveyInvitation(
                        survey_id=current.pk,
                        program_id=current.program_id,
                        member_id=member_id,
                        purchase_id=purchase_id,
                        status=Status.QUEUED,
                        created_at=now,
                    )
                    for purchase_id, member_id in chunk
                ],
                ignore_conflicts=True,
            )
            written = SurveyInvitation.objects.filter(
                purchase_id__in=[purchase_id for purchase_id, _m in chunk], created_at=now, email__isnull=True
            ).values_list("pk", "member_id", "purchase_id")
            emails_queue(
                [
                    outbox_row(
                        key=f"survey:order:{purchase_id}",
                        kind=SURVEY_EMAIL,
                        member_id=member_id,
                        program_id=current.program_id,
                        invitation_id=invitation_id,
                        now=now,
                    )
                    for invitation_id, member_id, purchase_id in written
                ],
                nudge=False,
            )
            selected += len(chunk)
            last_id = chunk[-1][0]
        if selected:
            outbox_nudge_on_commit()
    if selected:
        logger.info("Survey %s: %s invitations queued.", survey.pk, selected)
    return selected


def surveys_send_due(*, now: datetime | None = None) -> dict[str, int]:
    """Beat task (hourly): every active survey of an active programme selects its due orders.
    Returns ``{"surveys": <surveys run>, "queued": <invitations written>}``."""
    now = now or timezone.now()
    result = {"surveys": 0, "queued": 0}
    for survey in Survey.objects.filter(is_active=True, program__is_active=True).order_by("pk"):
        try:
            result["queued"] += survey_select(survey=survey, now=now)
            result["surveys"] += 1
        except Exception:  # one broken survey must not stop the others; the next run tries again
            logger.exception("Survey %s could not select its invitations.", survey.pk)
    return result


# --- sending -------------------------------------------------------------------------------


def invitation_skip_reason(invitation: SurveyInvitation, member: Member) -> str:
    """Why the invitation must not go (any more), or ``""``; checked when it is sent."""
    survey = invitation.survey
    if not survey.is_active:
        return "The survey was switched off before the email was sent."
    if not survey.program.is_active:
        return "The programme is switched off."
    if reason := marketing_unreachable_reason(member):
        return reason
    if invitation.purchase.status not in SURVEYED_STATUSES:
        return "The order was refunded or cancelled."
    return ""


def survey_language(*, survey: Survey, member: Member) -> str:
    return survey.language or member_language(member)


def survey_url(invitation: SurveyInvitation | None, *, nps: int | None = None) -> str:
    """The absolute link to the survey page (``None``: the preview link, which the page refuses)."""
    token = survey_token(invitation) if invitation is not None and invitation.pk else PREVIEW_TOKEN
    url = f"{site_url()}{reverse('loyalty:survey', args=[token])}"
    return url if nps is None else f"{url}?nps={nps}"


def survey_email_context(*, survey: Survey, url: str, order: str) -> dict[str, Any]:
    """What the survey email's templates use (JSON-serialisable, so previews can queue it)."""
    return {
        "survey_url": url,
        "order": order,
        "ask_nps": survey.ask_nps,
        "nps_question": survey.nps_question,
        "nps_scale": NPS_SCALE,
        "points": survey_points(survey=survey),
    }


def survey_points(*, survey: Survey, at: datetime | None = None) -> int:
    """The points an answer earns now through the programme's "Survey answered" rules."""
    if not survey.program_id:
        return 0
    return sum(
        rule.points for rule in paying_rules(survey.program, EarningRule.Kind.SURVEY_ANSWERED, at or timezone.now())
    )


def invitation_render(*, invitation: SurveyInvitation, member: Member) -> MemberEmail:
    """Subject, text, HTML and the one-click unsubscribe headers, in the survey's language."""
    context = survey_email_context(
        survey=invitation.survey, url=survey_url(invitation), order=invitation.purchase.order_reference
    )
    return member_email_render(
        member=member,
        template=TEMPLATE,
        context=context,
        language=survey_language(survey=invitation.survey, member=member),
    )


def invitation_send(*, invitation_id: int, now: datetime | None = None) -> str:
    """Send one queued invitation now through the outbox (what the workers do in batches);
    returns its status afterwards (``sent``, ``skipped``, ``failed``, or ``queued`` when a mail
    error left it for a later attempt), ``missing`` or ``not_queued``."""
    from .outbox import outbox_send_now

    return outbox_send_now(model=SurveyInvitation, pk=invitation_id, now=now)


def invitation_opened(*, invitation: SurveyInvitation, at: datetime | None = None) -> bool:
    """Record the first time the survey page was opened; ``True`` if this was it."""
    at = at or timezone.now()
    first = SurveyInvitation.objects.filter(pk=invitation.pk, opened_at__isnull=True).update(opened_at=at)
    if first:
        invitation.opened_at = at
    return bool(first)


# --- the signed link -------------------------------------------------------------------------
# The invitation id, signed with a salt of its own and a timestamp: changing the id breaks the
# signature, a campaign token does not work here, and after LINK_MAX_AGE the link is refused.
# ``PREVIEW_TOKEN`` (campaigns') stands in for the token in previews: the page refuses it as an invalid link.


def survey_token(invitation: SurveyInvitation) -> str:
    return signing.dumps(invitation.pk, salt=TOKEN_SALT)


def survey_token_load(token: str, *, max_age: timedelta = LINK_MAX_AGE) -> SurveyInvitation:
    """The invitation a token was made for, with its survey, programme, member and order.
    Raises :class:`SurveyLinkInvalid` (codes ``survey_link_invalid``, ``survey_link_expired``,
    ``survey_not_found``)."""
    try:
        invitation_id = signing.loads(token, salt=TOKEN_SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise SurveyLinkInvalid(
            _("This survey link has expired: survey links work for %(days)d days.") % {"days": max_age.days},
            code="survey_link_expired",
        ) from None
    except signing.BadSignature:
        raise SurveyLinkInvalid(_("This survey link is not valid.")) from None
    if not isinstance(invitation_id, int) or isinstance(invitation_id, bool):
        raise SurveyLinkInvalid(_("This survey link is not valid."))
    invitation = (
        SurveyInvitation.objects.select_related("survey__program", "member__user", "member__program", "purchase")
        .filter(pk=invitation_id)
        .first()
    )
    if invitation is None:
        raise SurveyLinkInvalid(_("This survey no longer exists."), code="survey_not_found")
    return invitation


# --- answering ---------------------------------------------------------------------------------


def _score(value: Any, *, low: int, high: int, field: str, message: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise SurveyAnswerInvalid(message, extra={"field": field})
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SurveyAnswerInvalid(message, extra={"field": field}) from None
    if str(number) != str(value).strip() or not low <= number <= high:
        raise SurveyAnswerInvalid(message, extra={"field": field})
    return number


def survey_answer_clean(
    *, survey: Survey, nps: Any, csat: Any, comment: str | None
) -> tuple[int | None, int | None, str]:
    """The answer as stored: scores as numbers (``None`` for a question not answered or not
    asked), the comment stripped. Raises :class:`SurveyAnswerInvalid` with a message to show."""
    nps = (
        _score(nps, low=NPS_MIN, high=NPS_MAX, field="nps", message=_("Choose a score from 0 to 10."))
        if survey.ask_nps
        else None
    )
    csat = (
        _score(csat, low=1, high=5, field="csat", message=_("Choose a rating from 1 to 5."))
        if survey.ask_csat
        else None
    )
    comment = (comment or "").strip() if survey.ask_comment else ""
    if len(comment) > COMMENT_MAX_LENGTH:
        raise SurveyAnswerInvalid(
            _("Please keep your comment under %(limit)d characters (it has %(length)d).")
            % {"limit": COMMENT_MAX_LENGTH, "length": len(comment)},
            extra={"field": "comment"},
        )
    if nps is None and csat is None and not comment:
        raise SurveyAnswerInvalid(_("Please answer at least one question."), extra={"field": None})
    return nps, csat, comment


def response_editable(response: SurveyResponse, *, now: datetime | None = None) -> bool:
    return (now or timezone.now()) <= response.submitted_at + EDIT_WINDOW


def _award(member: Member, response: SurveyResponse, at: datetime) -> int:
    """The programme's "Survey answered" rules pay once per order (key ``survey:<purchase>:rule:<rule>``)."""
    points = 0
    for rule in paying_rules(member.program, EarningRule.Kind.SURVEY_ANSWERED, at):
        if rule.points <= 0:
            continue
        entry = _bonus(
            member,
            rule,
            survey_points_key(purchase_id=response.purchase_id, rule_id=rule.pk),
            at=at,
            reference=f"survey:{response.purchase.order_reference}"[:100],
            purchase=response.purchase,
            locked=True,
        )
        points += entry.points
        member.balance += entry.points  # the caller's member stays current for the next credit
    return points


def survey_points_key(*, purchase_id: int, rule_id: int) -> str:
    return f"survey:{purchase_id}:rule:{rule_id}"


def survey_response_submit(
    *,
    invitation: SurveyInvitation,
    nps: Any = None,
    csat: Any = None,
    comment: str | None = "",
    language: str = "",
    now: datetime | None = None,
) -> tuple[SurveyResponse, bool]:
    """Store the answer for the invitation's order: ``(response, created)``.

    The first submit creates THE response for the order and pays the "Survey answered" rules
    (``response.points_awarded``); a submit within :data:`EDIT_WINDOW` of the first changes it
    (no points); a later one raises :class:`SurveyAlreadyAnswered`. Bad input raises
    :class:`SurveyAnswerInvalid`. Both write nothing. Concurrent submits for one order take
    turns on the member's and the invitation's row locks: one creates, the other edits.
    ``feedback.response_saved`` runs in the same transaction.
    """
    now = now or timezone.now()
    survey = invitation.survey
    nps, csat, comment = survey_answer_clean(survey=survey, nps=nps, csat=csat, comment=comment)
    language = (language or "")[:10]
    with transaction.atomic():
        member = Member.objects.select_for_update(of=("self",)).select_related("program").get(pk=invitation.member_id)
        SurveyInvitation.objects.select_for_update().filter(pk=invitation.pk).first()
        response = (
            SurveyResponse.objects.select_for_update()
            .select_related("purchase")
            .filter(purchase_id=invitation.purchase_id)
            .first()
        )
        created = response is None
        if created:
            response = SurveyResponse(
                survey=survey,
                program_id=invitation.program_id,
                member_id=invitation.member_id,
                purchase=invitation.purchase,
                submitted_at=now,
            )
        elif not response_editable(response, now=now):
            raise SurveyAlreadyAnswered(
                _("You already answered this survey on %(date)s. Thank you!")
                % {"date": date_format(timezone.localtime(response.submitted_at), "DATE_FORMAT")},
                extra={"response_id": response.pk},
            )
        response.nps, response.csat, response.comment = nps, csat, comment
        response.is_detractor = is_detractor(nps=nps, csat=csat)
        response.language, response.updated_at = language, now
        try:
            response.full_clean(exclude=["survey", "program", "member", "purchase"], validate_unique=False)
        except ValidationError as exc:  # the checks above should have caught it; never store a bad answer
            raise SurveyAnswerInvalid(" ".join(exc.messages)) from exc
        if created:
            try:
                with transaction.atomic():
                    response.save(force_insert=True)
            except IntegrityError:
                # Without row locks (SQLite) a concurrent first submit won: this one is an edit of it.
                raise SurveyAlreadyAnswered(_("Your answer was just saved. Thank you!")) from None
            response.points_awarded = _award(member, response, now)
        else:
            response.save()
            response.points_awarded = 0
        feedback.response_saved(response=response)
    logger.info(
        "Survey %s: answer for order %s %s.", survey.pk, invitation.purchase_id, "stored" if created else "changed"
    )
    return response, created


# --- reads for the page -------------------------------------------------------------------------


@dataclass(frozen=True)
class SurveyPage:
    """What the survey page shows: the invitation (with survey, member, order), the answer if
    any, whether it may still change, and the points the answer earned."""

    invitation: SurveyInvitation
    response: SurveyResponse | None
    editable: bool
    edit_until: datetime | None
    points_earned: int
    balance: int


def survey_page(*, invitation: SurveyInvitation, now: datetime | None = None) -> SurveyPage:
    """Two queries: the answer and the points it earned (whatever the member's history)."""
    response = SurveyResponse.objects.filter(purchase_id=invitation.purchase_id).first()
    points = 0
    if response is not None:
        points = (
            PointsEntry.objects.filter(
                program_id=invitation.program_id,
                member_id=invitation.member_id,
                idempotency_key__startswith=f"survey:{invitation.purchase_id}:rule:",
            ).aggregate(total=Sum("points"))["total"]
            or 0
        )
    return SurveyPage(
        invitation=invitation,
        response=response,
        editable=response is None or response_editable(response, now=now),
        edit_until=response.submitted_at + EDIT_WINDOW if response is not None else None,
        points_earned=points,
        balance=invitation.member.balance,
    )
