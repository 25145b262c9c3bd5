"""Staff policy: who may move how many points, enforced here for every caller (admin, API,
shell code, tasks) rather than in one screen.

- Nobody adjusts, or issues a free reward to, their own membership (superusers included).
- Loyalty managers (the ``loyalty.change_program`` permission) have no limits.
- Other staff (support agents) move at most ``LOYALTY["SUPPORT_ADJUST_LIMIT"]`` points in one
  adjustment (or a free reward worth that much), and at most
  ``LOYALTY["SUPPORT_DAILY_ADJUST_LIMIT"]`` points a day in all (the sum of the absolute values of
  their adjustments since midnight in ``TIME_ZONE``).

The policy applies to the staff user a write names (``by=``). A write without one is the
system's own (a data migration, a task acting for the programme) and is not held to it.
Refusals are :class:`~loyalty.exceptions.StaffPolicyRefused` errors with stable codes:
``own_membership``, ``adjust_limit_exceeded``, ``daily_adjust_limit_exceeded``.
"""

from __future__ import annotations

from datetime import datetime, time

from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.db.models.functions import Abs
from django.utils import timezone
from django.utils.translation import gettext as _

from ..conf import loyalty_settings
from ..exceptions import AdjustLimitExceeded, DailyAdjustLimitExceeded, OwnMembership
from ..models import Member, PointsEntry


def staff_is_manager(user) -> bool:
    """The "loyalty manager" capability: may change programmes (so superusers too)."""
    return _acting(user) and user.has_perm("loyalty.change_program")


def staff_adjust_limit(user) -> int | None:
    """The most points ``user`` may move in one adjustment (``None``: no limit)."""
    return None if staff_is_manager(user) else loyalty_settings.SUPPORT_ADJUST_LIMIT


def staff_daily_adjust_limit(user) -> int | None:
    """The most points ``user`` may move in adjustments per day (``None``: no limit)."""
    return None if staff_is_manager(user) else loyalty_settings.SUPPORT_DAILY_ADJUST_LIMIT


def _acting(user) -> bool:
    return user is not None and getattr(user, "is_authenticated", False)


def staff_check_member(*, user, member: Member) -> None:
    """Refuse when ``member`` is ``user``'s own membership."""
    if _acting(user) and member.user_id == user.pk:
        raise OwnMembership(_("You cannot change your own loyalty membership; ask a colleague."))


def staff_check_points(*, user, points: int) -> None:
    """Refuse an adjustment of ``points`` (either sign) above ``user``'s per-adjustment limit."""
    limit = staff_adjust_limit(user) if _acting(user) else None
    if limit is not None and abs(points) > limit:
        raise AdjustLimitExceeded(
            _("Support agents can adjust at most %(limit)d points at a time; ask a loyalty manager.")
            % {"limit": limit},
            extra={"limit": limit},
        )


def staff_adjusted_today(*, user, now: datetime | None = None) -> int:
    """Points ``user`` moved in adjustments today (absolute values, since local midnight)."""
    today = timezone.localdate(now or timezone.now())
    start = timezone.make_aware(datetime.combine(today, time.min))
    total = PointsEntry.objects.filter(
        kind=PointsEntry.Kind.ADJUST, created_by_id=user.pk, created_at__gte=start
    ).aggregate(total=Sum(Abs("points")))["total"]
    return int(total or 0)


def staff_lock_for_daily_total(user) -> None:
    """Serialise one agent's adjustments (call inside a transaction) so two at once cannot both
    fit under the daily total."""
    if _acting(user) and staff_daily_adjust_limit(user) is not None:
        list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))


def staff_check_daily_total(*, user, points: int, now: datetime | None = None) -> None:
    """Refuse when ``points`` would take ``user``'s adjustments of the day past their daily limit."""
    limit = staff_daily_adjust_limit(user) if _acting(user) else None
    if limit is None:
        return
    done = staff_adjusted_today(user=user, now=now)
    if done + abs(points) > limit:
        raise DailyAdjustLimitExceeded(
            _(
                "Support agents can adjust at most %(limit)d points a day; you have adjusted %(done)d today. "
                "Ask a loyalty manager."
            )
            % {"limit": limit, "done": done},
            extra={"limit": limit, "done": done},
        )


def staff_check_free_reward(*, user, member: Member, points_cost: int) -> None:
    """A free reward issued by staff: not to themselves, worth at most their per-adjustment limit."""
    staff_check_member(user=user, member=member)
    limit = staff_adjust_limit(user) if _acting(user) else None
    if limit is not None and points_cost > limit:
        raise AdjustLimitExceeded(
            _("Support agents can issue rewards worth at most %(limit)d points; ask a loyalty manager.")
            % {"limit": limit},
            extra={"limit": limit},
        )
