"""Reads: what pages, admin, API and commands show. Query counts do not grow with history.

What lives here: ``account`` (the account panel per programme), ``history`` (points history in
words, points that lapse soon), ``rewards`` (rewards on offer, a member's codes), ``tiers`` (what
counts towards a tier, progress to the next), ``orders`` (an order's points, a guest's points),
``programs`` (the "How it works" page), ``ledger`` (the balance check), ``campaigns`` (a
campaign's results against its control group), ``health`` (latest fit and run, at-risk lists)
and the ``kpis`` package (the dashboard and API KPIs). Every public name is importable from
``loyalty.selectors``.
"""

from . import kpis
from .account import MemberSummary, account_summaries, checkout_points_worth, memberships_for_user
from .campaigns import campaign_report
from .health import at_risk_members, default_health_program, latest_health_fit, latest_health_run, members_moved_into
from .history import (
    CANCELLED_NOTE,
    CHECKOUT_GIVEN_BACK,
    CHECKOUT_KEY_PREFIX,
    ExpiringPoints,
    HistoryRow,
    expiring_points,
    history_row,
    paid_with_points,
    points_history,
    points_history_page,
)
from .ledger import ledger_mismatches
from .orders import OrderPoints, guest_points_earned, guest_points_for, guest_points_reversed, order_points
from .programs import ProgramOverview, program_overview
from .rewards import RewardOption, member_codes, reward_options
from .tiers import (
    TIER_ENTRY_KEY_PREFIX,
    TIER_POINTS_KINDS,
    QualificationKey,
    TierProgress,
    members_with_tier_qualification,
    tier_progress,
    tier_qualification,
    tier_qualification_alias,
    tier_qualification_keys,
)

__all__ = [
    "kpis",
    "CHECKOUT_GIVEN_BACK",
    "CHECKOUT_KEY_PREFIX",
    "checkout_points_worth",
    "paid_with_points",
    "CANCELLED_NOTE",
    "TIER_ENTRY_KEY_PREFIX",
    "TIER_POINTS_KINDS",
    "ExpiringPoints",
    "HistoryRow",
    "MemberSummary",
    "OrderPoints",
    "ProgramOverview",
    "QualificationKey",
    "RewardOption",
    "TierProgress",
    "account_summaries",
    "at_risk_members",
    "campaign_report",
    "default_health_program",
    "expiring_points",
    "guest_points_earned",
    "guest_points_for",
    "guest_points_reversed",
    "history_row",
    "latest_health_fit",
    "latest_health_run",
    "ledger_mismatches",
    "member_codes",
    "members_moved_into",
    "members_with_tier_qualification",
    "memberships_for_user",
    "order_points",
    "points_history",
    "points_history_page",
    "program_overview",
    "reward_options",
    "tier_progress",
    "tier_qualification",
    "tier_qualification_alias",
    "tier_qualification_keys",
]
