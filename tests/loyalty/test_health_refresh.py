"""Customer health refresh: RFM segments on a hand-made purchase table, at-risk rules, the
purchase model once there is enough history, segment changes, idempotence and query counts."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from loyalty import signals, tasks
from loyalty.health import rfm
from loyalty.models import CustomerHealth, HealthModelFit, HealthRun, Purchase, Segment, SegmentChange
from loyalty.services import member_enroll
from loyalty.services.health import health_fit_model, health_refresh, health_settings_for
from tests.factories import ProgramFactory, UserFactory

NOW = timezone.datetime(2026, 6, 30, 12, 0, tzinfo=timezone.get_fixed_timezone(0))


def buyer(program, name: str, *, orders: int, last_days_ago: float, gap_days: float, spent: str, now=NOW):
    """A member with ``orders`` purchases ``gap_days`` apart, the last ``last_days_ago`` before ``now``."""
    member = member_enroll(program=program, user=UserFactory(username=name, email=f"{name}@example.com"))[0]
    each = Decimal(spent) / orders
    for i in range(orders):
        Purchase.objects.create(
            program=program,
            member=member,
            order_reference=f"{name}-{i}",
            amount=each.quantize(Decimal("0.01")),
            currency=program.currency,
            occurred_at=now - timedelta(days=last_days_ago + gap_days * (orders - 1 - i)),
        )
    return member


def five_buyers(program) -> dict:
    """Five buyers, one per quintile on each of R, F and M, and one member who never bought."""
    return {
        "champion": buyer(program, "ada", orders=5, last_days_ago=1, gap_days=30, spent="500"),
        "promising": buyer(program, "bea", orders=1, last_days_ago=10, gap_days=0, spent="20"),
        "overdue": buyer(program, "cid", orders=3, last_days_ago=40, gap_days=10, spent="300"),
        "rfm_at_risk": buyer(program, "dan", orders=4, last_days_ago=100, gap_days=60, spent="400"),
        "dormant": buyer(program, "eve", orders=2, last_days_ago=300, gap_days=30, spent="100"),
        "prospect": member_enroll(program=program, user=UserFactory(username="fay"))[0],
    }


@pytest.fixture
def shop(program):
    return five_buyers(program)


def health(member) -> CustomerHealth:
    return CustomerHealth.objects.get(member=member)


def test_segments_on_a_hand_made_purchase_table(program, shop):
    run = health_refresh(program=program, now=NOW)

    assert run.scored_by == "rules"  # five buyers: far too few for the purchase model
    assert run.fit.status == HealthModelFit.Status.INSUFFICIENT
    assert "5 buyers of 500 needed" in run.fit.reason
    champion = health(shop["champion"])
    assert (champion.r_score, champion.f_score, champion.m_score) == (5, 5, 5)
    assert champion.segment == Segment.CHAMPIONS
    assert champion.orders == 5 and champion.frequency == 4 and champion.recency_days == 1
    assert champion.total_spent == Decimal("500.00") and champion.monetary == Decimal("100.00")
    assert champion.typical_gap_days == pytest.approx(30)
    assert champion.expected_next_order_on == (NOW - timedelta(days=1) + timedelta(days=30)).date()
    assert (health(shop["promising"]).r_score, health(shop["promising"]).segment) == (4, Segment.PROMISING)
    assert health(shop["dormant"]).segment == Segment.DORMANT  # overdue too, but already gone further
    prospect = health(shop["prospect"])
    assert prospect.segment == Segment.PROSPECTS and prospect.r_score is None and prospect.orders == 0
    assert run.segment_counts[Segment.CHAMPIONS] == 1 and run.members == 6


def test_at_risk_by_rfm_grid_and_by_their_own_rhythm(program, shop):
    run = health_refresh(program=program, now=NOW)

    overdue = health(shop["overdue"])  # RFM says "needs attention"; 40 days > 2.5 x their 10-day gap
    assert (overdue.r_score, overdue.segment, overdue.at_risk, overdue.risk_reason) == (3, "at_risk", True, "gap")
    slipping = health(shop["rfm_at_risk"])  # R2, FM4: the grid's "at risk"; 100 days < 2.5 x 60
    assert (slipping.segment, slipping.risk_reason) == (Segment.AT_RISK, CustomerHealth.Reason.RFM)
    assert not health(shop["champion"]).at_risk
    assert run.at_risk == 2 and run.flagged_by_gap == 1


def test_one_order_customers_need_high_value_to_count_as_history(program, shop):
    policy = health_settings_for(program)
    policy.gap_factor = Decimal("1.00")
    policy.save()

    health_refresh(program=program, now=NOW)

    # bea bought once, 10 days ago, little: no real history, so never "at risk" on rhythm alone
    assert not health(shop["promising"]).at_risk


def test_refresh_is_idempotent(program, shop):
    health_refresh(program=program, now=NOW)
    first = {h.member_id: (h.segment, h.segment_since, h.r_score) for h in CustomerHealth.objects.all()}
    changes = SegmentChange.objects.count()

    health_refresh(program=program, now=NOW + timedelta(hours=1))

    again = {h.member_id: (h.segment, h.segment_since, h.r_score) for h in CustomerHealth.objects.all()}
    assert again == first
    assert SegmentChange.objects.count() == changes == 6  # the first assignment of each member


def test_segment_changes_are_recorded_with_the_moment(program, shop):
    health_refresh(program=program, now=NOW)
    later = NOW + timedelta(days=60)

    health_refresh(program=program, now=later)

    champion = health(shop["champion"])  # 61 days since the last order, 2.5 x 30 = 75: not yet overdue
    moved = SegmentChange.objects.filter(member=shop["overdue"]).order_by("changed_at")
    assert [(c.from_segment, c.to_segment) for c in moved][0] == ("", "at_risk")
    assert champion.computed_at == later
    assert all(h.segment_since in (NOW, later) for h in CustomerHealth.objects.all())
    for change in SegmentChange.objects.filter(changed_at=later):
        assert health(change.member).segment == change.to_segment
        assert health(change.member).segment_since == later


def test_members_at_risk_signal_names_who_moved_in(program, shop, django_capture_on_commit_callbacks):
    received = []

    def on_risk(sender, program, member_ids, **kwargs):
        received.extend(member_ids)

    signals.members_at_risk.connect(on_risk)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            health_refresh(program=program, now=NOW)
        with django_capture_on_commit_callbacks(execute=True):
            health_refresh(program=program, now=NOW + timedelta(hours=1))
    finally:
        signals.members_at_risk.disconnect(on_risk)
    assert sorted(received) == sorted([shop["overdue"].pk, shop["rfm_at_risk"].pk])  # once, not again


def test_chunks_give_the_same_answer_as_one_pass(program, shop):
    whole = health_refresh(program=program, now=NOW)
    one = {h.member_id: (h.segment, h.r_score, h.f_score, h.m_score, h.at_risk) for h in CustomerHealth.objects.all()}
    CustomerHealth.objects.all().delete()

    chunked = health_refresh(program=program, now=NOW, chunk_size=2)

    assert chunked.chunks == 3 and whole.chunks == 1
    assert {
        h.member_id: (h.segment, h.r_score, h.f_score, h.m_score, h.at_risk) for h in CustomerHealth.objects.all()
    } == one


def test_query_count_does_not_grow_with_members(db):
    def queries_for(n: int) -> int:
        program = ProgramFactory()
        for i in range(n):
            buyer(program, f"m{n}-{i}", orders=2, last_days_ago=i + 1, gap_days=20, spent=str(10 + i))
        health_fit_model(program=program, now=NOW)  # the weekly fit is its own task
        with CaptureQueriesContext(connection) as ctx:
            health_refresh(program=program, now=NOW)
        return len(ctx.captured_queries)

    # PostgreSQL writes with COPY; elsewhere bulk_create batches are bounded by the driver's
    # parameter limit (SQLite: about 40 health rows per INSERT), so stay inside one batch there.
    many = 300 if connection.vendor == "postgresql" else 30
    assert queries_for(5) == queries_for(many)


def test_refresh_tasks_close_the_run_and_survive_vanished_rows(program, shop):
    tasks.refresh_health(program.pk)  # the in-memory broker keeps the chunks; run them here
    run = HealthRun.objects.get()
    assert run.chunks == 1 and run.finished_at is None
    assert tasks.refresh_health_chunk(run.pk, shop["champion"].pk, shop["prospect"].pk) == 6
    run.refresh_from_db()
    assert run.finished_at is not None and run.members == 6
    assert tasks.refresh_health_chunk(run.pk + 999, 1, 10) == 0


def _simulated_history(program, n: int, rng: np.random.Generator, now):
    """Customers buying as Poisson processes that may drop out: enough history for the model."""
    rows, members = [], []
    users = [UserFactory(username=f"sim{i}") for i in range(n)]
    for i, user in enumerate(users):
        member = member_enroll(program=program, user=user)[0]
        start = rng.uniform(200, 700)
        rate = rng.gamma(2.0, 1 / 40)  # purchases per day
        lifetime = rng.exponential(400)
        t, k = start, 0
        while t > 0 and start - t < lifetime:
            rows.append(
                Purchase(
                    program=program,
                    member=member,
                    order_reference=f"sim{i}-{k}",
                    amount=Decimal(str(round(rng.uniform(20, 80), 2))),
                    currency="EUR",
                    occurred_at=now - timedelta(days=t),
                )
            )
            t -= rng.exponential(1 / rate)
            k += 1
        members.append(member)
    Purchase.objects.bulk_create(rows)
    return members


def test_with_enough_history_the_purchase_model_scores_everyone(program):
    policy = health_settings_for(program)
    policy.min_buyers_for_model, policy.min_frequent_buyers = 100, 10
    policy.save()
    members = _simulated_history(program, 150, np.random.default_rng(7), NOW)
    steady = buyer(program, "steady", orders=12, last_days_ago=2, gap_days=14, spent="600")
    drifting = buyer(program, "drift", orders=12, last_days_ago=150, gap_days=14, spent="600")

    fit = health_fit_model(program=program, now=NOW)
    run = health_refresh(program=program, now=NOW)

    assert fit.status == HealthModelFit.Status.FITTED and fit.log_likelihood < 0
    assert all(v > 0 for v in (fit.r, fit.alpha, fit.a, fit.b))
    assert fit.risk_model is not None and fit.backtest_days == 90  # the horizon fits in a third of the history
    assert fit.backtest_auc > 0.6
    assert run.fit_id == fit.pk and run.scored_by == "bgnbd"
    scored = CustomerHealth.objects.filter(member__in=members, orders__gt=0)
    assert not scored.filter(p_lapse__isnull=True).exists()
    assert health(steady).p_lapse < 0.3 and not health(steady).at_risk
    assert health(steady).predicted_clv > Decimal("0") and health(steady).expected_purchases > 1
    assert health(drifting).p_lapse > float(policy.lapse_threshold)
    assert health(drifting).at_risk and health(drifting).risk_reason in ("model", "both")
    assert set(run.threshold_shares) >= {"0.500", "0.700", "0.900"}
    assert run.threshold_shares["0.500"] >= run.threshold_shares["0.900"]


def test_scores_from_sql_bounds_match_the_midpoint_quintile_of_each_value(program):
    rng = np.random.default_rng(3)
    for i in range(40):  # many ties: orders 1-3, spend in a few steps
        orders = int(rng.integers(1, 4))
        buyer(
            program,
            f"t{i}",
            orders=orders,
            last_days_ago=float(rng.integers(1, 30)),
            gap_days=7,
            spent=str(int(rng.choice([20, 50, 50, 120]))),
        )
    health_refresh(program=program, now=NOW)

    rows = list(CustomerHealth.objects.filter(orders__gt=0).values_list("orders", "total_spent", "f_score", "m_score"))
    orders = np.array([r[0] for r in rows])
    spent = np.floor([float(r[1]) for r in rows])  # spend is compared in whole currency units
    for values, scores in ((orders, [r[2] for r in rows]), (spent, [r[3] for r in rows])):
        less = np.array([(values < v).sum() for v in values])
        equal = np.array([(values == v).sum() for v in values])
        assert list(rfm.midpoint_quintile(less, equal, len(values))) == scores


def test_two_customers_still_spread_over_the_scale(program):
    """A brand-new shop: quintiles of two buyers are 2 and 4, so the grid still makes sense."""
    recent = buyer(program, "new1", orders=2, last_days_ago=2, gap_days=10, spent="80")
    older = buyer(program, "new2", orders=2, last_days_ago=60, gap_days=10, spent="80")

    health_refresh(program=program, now=NOW)

    assert (health(recent).r_score, health(older).r_score) == (4, 2)
    assert health(recent).f_score == health(older).f_score == 3
    assert health(older).segment == Segment.AT_RISK  # R2, FM3; and 60 days > 2.5 x 10


def test_refunded_and_cancelled_orders_do_not_count(program):
    member = buyer(program, "ret", orders=3, last_days_ago=5, gap_days=10, spent="90")
    latest = Purchase.objects.filter(member=member).order_by("-occurred_at")
    Purchase.objects.filter(pk=latest[0].pk).update(status=Purchase.Status.REFUNDED, refunded_amount=F("amount"))
    Purchase.objects.filter(pk=latest[1].pk).update(status=Purchase.Status.CANCELLED)

    health_refresh(program=program, now=NOW)

    assert (health(member).orders, health(member).recency_days, health(member).total_spent) == (1, 25, Decimal("30.00"))


def test_an_empty_programme_refreshes_to_nothing(program):
    run = health_refresh(program=program, now=NOW)
    assert (run.members, run.chunks, run.at_risk) == (0, 0, 0) and run.finished_at is not None

    tasks.refresh_health(program.pk)
    empty_run = HealthRun.objects.latest()
    assert tasks.refresh_health_chunk(empty_run.pk, 0, -1) == 0  # what the fan-out sends for no members
    empty_run.refresh_from_db()
    assert empty_run.finished_at is not None


def test_the_command_refreshes_and_reports(program, shop):
    out = StringIO()
    call_command("loyalty_refresh_health", "--fit", stdout=out)
    assert "purchase model: Not enough history" in out.getvalue()
    assert "6 members scored by rules" in out.getvalue() and "prospects 1" in out.getvalue()

    with pytest.raises(CommandError, match='No programme with the slug "nope"'):
        call_command("loyalty_refresh_health", "--program", "nope")
