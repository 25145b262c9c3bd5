"""The account panel: a member's summary per programme (balance, tier progress, rewards, codes, history)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.core.paginator import Page
from django.db.models import QuerySet

from ..models import Member, PointsEntry, Redemption
from .history import ExpiringPoints, HistoryRow, expiring_points, points_history_page
from .rewards import RewardOption, member_codes, reward_options
from .tiers import TierProgress, tier_progress


@dataclass(frozen=True)
class MemberSummary:
    member: Member
    history: list[PointsEntry] | list[HistoryRow]
    progress: TierProgress | None = None
    rewards: list[RewardOption] = field(default_factory=list)
    codes: list[Redemption] = field(default_factory=list)
    history_page: Page | None = None
    expiring: ExpiringPoints | None = None
    # The shop takes points as money at checkout: only then is the balance "worth" an amount.
    points_as_money: bool = False
    points_worth: Decimal | None = None  # what the balance pays in the cart now (whole steps)
    points_needed: int = 0  # points still missing before the cart takes any (points_as_money)

    @property
    def program(self):
        return self.member.program

    @property
    def best_affordable(self) -> RewardOption | None:
        """The dearest reward the member can have now: what the balance buys."""
        options = self.affordable_rewards
        return options[-1] if options else None

    @property
    def next_reward(self) -> RewardOption | None:
        """The cheapest reward the member may have once they have the points."""
        return next((o for o in self.rewards if o.missing_points and not o.unavailable_because), None)

    @property
    def affordable_rewards(self) -> list[RewardOption]:
        return [option for option in self.rewards if option.redeemable]

    @property
    def other_rewards(self) -> list[RewardOption]:
        return [option for option in self.rewards if not option.redeemable]


def memberships_for_user(user) -> QuerySet[Member]:
    if not getattr(user, "is_authenticated", False):
        return Member.objects.none()
    return (
        Member.objects.filter(user=user, program__is_active=True)
        .select_related("program", "tier")
        .order_by("program_id")
    )


def account_summaries(user, *, history_page: int | str | None = None) -> list[MemberSummary]:
    """What the account panel shows; a constant number of queries per programme, whatever the
    length of the ledger. ``history_page``: the page of points history (``?history_page=N``),
    the first when missing or invalid, the last when past the end."""
    summaries = []
    for member in memberships_for_user(user):
        page = points_history_page(member, page=history_page)
        worth, needed = checkout_points_worth(member)
        summaries.append(
            MemberSummary(
                member=member,
                history=list(page.object_list),
                history_page=page,
                progress=tier_progress(member),
                rewards=reward_options(member),
                codes=member_codes(member),
                expiring=expiring_points(member),
                points_as_money=worth is not None,
                points_worth=worth,
                points_needed=needed,
            )
        )
    return summaries


def checkout_points_worth(member: Member) -> tuple[Decimal | None, int]:
    """What the balance pays in the cart now, ``(money, 0)``, counting whole steps only;
    ``(0.00, n)`` when ``n`` more points are needed first; ``(None, 0)`` when the member cannot
    pay with points at all (no active points discount, or one for higher tiers). Two queries."""
    from ..exceptions import LoyaltyError
    from ..services.checkout_points import points_amount, points_discount_reward

    try:
        reward = points_discount_reward(member=member)
    except LoyaltyError:
        return None, 0
    balance = max(member.balance, 0)
    usable = balance - balance % reward.points_step
    if usable < reward.points_cost:
        return Decimal("0.00"), reward.points_cost - balance
    return points_amount(usable, reward.point_value or member.program.point_value), 0
