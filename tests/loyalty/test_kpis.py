"""Loyalty KPIs (loyalty.selectors.kpis) on hand-made data whose answers are known: orders and guests,
refunds, customers, CLV, points from the real ledger services, members per tier and segment,
monthly series, and query counts that do not grow with the data."""

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from loyalty.models import CustomerHealth, Member, PointsEntry, Purchase, Segment, SegmentChange, Tier
from loyalty.selectors import kpis
from loyalty.services import member_enroll, points_adjust, points_credit, points_debit
from tests.factories import CampaignFactory, UserFactory

pytestmark = pytest.mark.django_db

Kind = PointsEntry.Kind
Status = Purchase.Status


def local(*args) -> datetime:
    """An aware datetime in the project's time zone (Europe/Berlin)."""
    return timezone.make_aware(datetime(*args))


#: A quarter: 1 January to 31 March 2026 (``END`` is exclusive).
START, END = local(2026, 1, 1), local(2026, 4, 1)


def enrol(program, name: str, *, joined: datetime | None = None) -> Member:
    user = UserFactory(username=name, email=f"{name}@example.com")
    return member_enroll(program=program, user=user, at=joined or local(2025, 6, 1))[0]


def order(program, ref: str, amount: str, at: datetime, *, member=None, email="", refunded="0", status=Status.PAID):
    return Purchase.objects.create(
        program=program,
        member=member,
        email=email or (member.user.email if member else ""),
        order_reference=ref,
        amount=Decimal(amount),
        refunded_amount=Decimal(refunded),
        currency=program.currency,
        status=status,
        occurred_at=at,
    )


@pytest.fixture
def quarter(program):
    """4 member orders and 1 guest order that count, 1 refunded and 1 cancelled order that do not,
    and orders just outside the period.

    ann: 100.00 (Jan) + 60.00 (Feb)          -> 2 orders, a repeat customer
    bob: 40.00, 10.00 of it refunded (Feb)   -> 1 order at 30.00 net
    dan: 70.00 (Mar)                         -> 1 order
    guest Gia@Example.com: 40.00 (Mar)       -> 1 guest order
    cid: 80.00 fully refunded, 25.00 cancelled -> not counted
    ann 500.00 on 31 Dec, bob 999.00 at END   -> outside the period
    """
    ann, bob, cid, dan = (enrol(program, name) for name in ("ann", "bob", "cid", "dan"))
    order(program, "A-1", "100.00", local(2026, 1, 10, 12), member=ann)
    order(program, "A-2", "60.00", local(2026, 2, 10, 12), member=ann)
    order(
        program, "B-1", "40.00", local(2026, 2, 15, 12), member=bob, refunded="10.00", status=Status.PARTIALLY_REFUNDED
    )
    order(program, "D-1", "70.00", local(2026, 3, 12, 12), member=dan)
    order(program, "G-1", "40.00", local(2026, 3, 5, 12), email="Gia@Example.com")
    order(program, "C-1", "80.00", local(2026, 1, 20, 12), member=cid, refunded="80.00", status=Status.REFUNDED)
    order(program, "C-2", "25.00", local(2026, 1, 21, 12), member=cid, status=Status.CANCELLED)
    order(program, "A-0", "500.00", local(2025, 12, 31, 23, 59), member=ann)
    order(program, "B-9", "999.00", END, member=bob)
    return {"ann": ann, "bob": bob, "cid": cid, "dan": dan}


# --- orders -----------------------------------------------------------------------------------


def test_order_kpis_of_a_hand_made_quarter(program, quarter):
    result = kpis.order_kpis(program=program, start=START, end=END)

    assert (result.orders, result.guest_orders, result.member_orders) == (5, 1, 4)
    assert result.guest_checkout_rate == 0.2  # 1 guest order of 5
    assert result.revenue == Decimal("300.00")  # 100 + 60 + (40 - 10) + 70 + 40
    assert result.member_revenue == Decimal("260.00") and result.guest_revenue == Decimal("40.00")
    assert result.average_order_value == Decimal("60.00")  # 300 / 5
    assert result.customers == 4  # ann, bob, dan, the guest
    assert result.purchase_frequency == 1.25  # 5 orders / 4 customers
    assert (result.repeat_customers, result.repeat_purchase_rate) == (1, 0.25)  # ann of 4
    assert result.member_revenue_share == pytest.approx(260 / 300)


def test_a_guest_is_one_customer_by_email_whatever_its_case_and_orders_without_email_each_count(program):
    order(program, "G-1", "10.00", local(2026, 1, 5), email="Gia@Example.com")
    order(program, "G-2", "30.00", local(2026, 2, 5), email="gia@example.COM")
    order(program, "N-1", "20.00", local(2026, 2, 6))  # no email: cannot be matched
    order(program, "N-2", "20.00", local(2026, 2, 7))

    result = kpis.order_kpis(program=program, start=START, end=END)

    assert (result.orders, result.guest_orders, result.customers, result.repeat_customers) == (4, 4, 3, 1)
    assert result.guest_checkout_rate == 1.0 and result.member_revenue_share == 0.0


def test_an_empty_period_gives_zeros_and_no_ratios(program):
    result = kpis.order_kpis(program=program, start=START, end=END)

    assert (result.orders, result.revenue, result.customers) == (0, Decimal("0.00"), 0)
    assert result.guest_checkout_rate is None and result.average_order_value is None
    assert result.purchase_frequency is None and result.repeat_purchase_rate is None
    assert result.member_revenue_share is None


def test_another_programmes_orders_do_not_count(program, quarter):
    from tests.factories import ProgramFactory

    other = ProgramFactory(slug="other", name="Other")
    order(other, "X-1", "1000.00", local(2026, 1, 15), email="x@example.com")

    assert kpis.order_kpis(program=program, start=START, end=END).revenue == Decimal("300.00")


# --- customer lifetime value ----------------------------------------------------------------


def test_clv_of_the_textbook_example_is_exact_and_needs_no_query(program, django_assert_num_queries):
    with django_assert_num_queries(0):
        clv = kpis.customer_lifetime_value(
            program=program,
            start=START,
            end=END,
            purchases_per_year=12,
            average_order_value=Decimal("50.00"),
            expected_years=8,
        )

    assert clv.value == Decimal("4800") and clv.value == Decimal("4800.00")
    assert clv.expected_years_source == "given"


def test_clv_estimated_from_a_year_and_the_year_before(program):
    """2025: a, b, c, d bought. 2026: a twice, b once, and e (new). Churn = 2 of 4 = 50 %, so
    1 / 0.5 = 2 years; 4 orders / 3 customers = 1.33 a year; AOV 200 / 4 = 50.00."""
    year, previous = (local(2026, 1, 1), local(2027, 1, 1)), local(2025, 1, 1)
    a, b, c, d, e = (enrol(program, name) for name in "abcde")
    for i, member in enumerate((a, b, c, d)):
        order(program, f"old-{i}", "30.00", previous + timedelta(days=40 + i), member=member)
    order(program, "a-1", "50.00", local(2026, 2, 1), member=a)
    order(program, "a-2", "70.00", local(2026, 8, 1), member=a)
    order(program, "b-1", "60.00", local(2026, 5, 1), member=b)
    order(program, "e-1", "20.00", local(2026, 11, 1), member=e)

    clv = kpis.customer_lifetime_value(program=program, start=year[0], end=year[1])

    assert clv.yearly_churn == pytest.approx(0.5)
    assert (clv.expected_years, clv.expected_years_source) == (Decimal("2.00"), "churn")
    assert clv.purchases_per_year == Decimal("1.33")
    assert clv.average_order_value == Decimal("50.00")
    assert clv.value == Decimal("133.00")  # 1.33 x 50.00 x 2.00
    # Given factors win over the data.
    assert kpis.customer_lifetime_value(program=program, start=year[0], end=year[1], expected_years=8).value == Decimal(
        "532.00"
    )


def test_clv_with_no_churn_is_capped_and_without_a_previous_period_unknown(program):
    a = enrol(program, "a")
    order(program, "a-0", "40.00", local(2025, 3, 1), member=a)
    order(program, "a-1", "40.00", local(2026, 3, 1), member=a)
    year = {"start": local(2026, 1, 1), "end": local(2027, 1, 1)}

    capped = kpis.customer_lifetime_value(program=program, **year)
    unknown = kpis.customer_lifetime_value(program=program, start=local(2025, 1, 1), end=local(2026, 1, 1))

    assert (capped.expected_years, capped.expected_years_source) == (kpis.MAX_EXPECTED_YEARS, "cap")
    assert capped.value == Decimal("400.00")  # 1 a year x 40.00 x 10
    assert kpis.customer_lifetime_value(program=program, max_years=5, **year).value == Decimal("200.00")
    assert (unknown.value, unknown.expected_years_source) == (None, "unknown")
    assert unknown.average_order_value == Decimal("40.00")


# --- points -----------------------------------------------------------------------------------


@pytest.fixture
def ledger(program):
    """Ledger rows written by the real services in the last 30 days (adjustments are dated now).

    ann: earn 1000, bonus 200, staff +100, redeem 300, staff -50, expire 100, reverse 50 -> 800
    bob: earn 5000 sixty days ago (outside the period)                                   -> 5000
    cat: earn 40, then a refund reverses 70 (a negative balance)                         -> -30
    """
    now = timezone.now()
    ann, bob, cat = (enrol(program, name, joined=now - timedelta(days=90)) for name in ("ann", "bob", "cat"))

    def credit(member, points, kind, key, days_ago):
        return points_credit(
            member=member, points=points, kind=kind, idempotency_key=key, at=now - timedelta(days=days_ago)
        )

    def debit(member, points, kind, key, days_ago, **extra):
        return points_debit(
            member=member, points=points, kind=kind, idempotency_key=key, at=now - timedelta(days=days_ago), **extra
        )

    credit(ann, 1000, Kind.EARN, "order:A-1:earn", 10)
    credit(ann, 200, Kind.BONUS, "rule:1:member:ann", 9)
    points_adjust(member=ann, points=100, reason="Goodwill", idempotency_key="adjust:t:1")
    debit(ann, 300, Kind.REDEEM, "redeem:1", 5)
    points_adjust(member=ann, points=-50, reason="Correction", idempotency_key="adjust:t:2")
    debit(ann, 100, Kind.EXPIRE, "expire:ann:1", 2)
    debit(ann, 50, Kind.REVERSE, "order:A-1:refund", 3)
    credit(bob, 5000, Kind.EARN, "order:B-1:earn", 60)
    credit(cat, 40, Kind.EARN, "order:C-1:earn", 8)
    debit(cat, 70, Kind.REVERSE, "order:C-1:refund", 7, allow_negative=True)
    return {"now": now, "start": now - timedelta(days=30), "end": now + timedelta(days=1)}


def test_points_kpis_from_ledger_rows_written_by_the_services(program, ledger):
    result = kpis.points_kpis(program=program, start=ledger["start"], end=ledger["end"])

    assert result.issued == 1000 + 200 + 100 + 40  # earn + bonus + positive adjustment
    assert result.redeemed == 300
    assert result.expired == 100
    assert result.reversed == 50 + 70
    assert result.adjusted_out == 50
    assert result.redemption_rate == pytest.approx(300 / 1340)


def test_liability_is_the_positive_balances_now_in_money(program, ledger):
    assert dict(Member.objects.values_list("user__username", "balance")) == {"ann": 800, "bob": 5000, "cat": -30}

    result = kpis.points_kpis(program=program, start=ledger["start"], end=ledger["end"])

    assert result.liability_points == 5800  # cat's debt does not lower what is owed to the others
    assert result.liability == Decimal("58.00")  # at 0.01 EUR a point
    assert kpis.points_liability(program=program) == (5800, Decimal("58.00"))


def test_no_points_no_redemption_rate(program):
    result = kpis.points_kpis(program=program, start=START, end=END)

    assert (result.issued, result.redeemed, result.redemption_rate) == (0, 0, None)
    assert (result.liability_points, result.liability) == (0, Decimal("0.00"))


# --- members ----------------------------------------------------------------------------------


@pytest.fixture
def members(program):
    """ann and dan joined in the quarter, bob before, eve after it; tiers and segments as set here."""
    bronze = Tier.objects.create(program=program, name="Bronze", rank=1, qualifies_by="spend", colour="#8c5a2b")
    silver = Tier.objects.create(program=program, name="Silver", rank=2, qualifies_by="spend", threshold=500)
    ann = enrol(program, "ann", joined=local(2026, 1, 15))
    bob = enrol(program, "bob", joined=local(2025, 5, 1))
    dan = enrol(program, "dan", joined=local(2026, 3, 31, 23))
    enrol(program, "eve", joined=END)  # after the period, no tier, not scored
    Member.objects.filter(pk__in=[ann.pk, bob.pk]).update(tier=bronze)
    Member.objects.filter(pk=dan.pk).update(tier=silver)
    for member, segment in ((ann, Segment.CHAMPIONS), (bob, Segment.AT_RISK), (dan, Segment.AT_RISK)):
        CustomerHealth.objects.create(
            member=member, program=program, segment=segment, segment_since=END, computed_at=END
        )

    def moved(member, to, days_before_end, came_from=""):
        SegmentChange.objects.create(
            program=program,
            member=member,
            from_segment=came_from,
            to_segment=to,
            changed_at=END - timedelta(days=days_before_end),
        )

    moved(bob, Segment.AT_RISK, 2, Segment.LOYAL)
    moved(dan, Segment.AT_RISK, 6, Segment.NEW)
    moved(dan, Segment.NEEDS_ATTENTION, 4, Segment.AT_RISK)
    moved(dan, Segment.AT_RISK, 1, Segment.NEEDS_ATTENTION)  # twice in the week: one member
    moved(ann, Segment.AT_RISK, 8, Segment.LOYAL)  # before the week
    moved(ann, Segment.CHAMPIONS, 7.5, Segment.AT_RISK)
    return {"bronze": bronze, "silver": silver}


def test_member_kpis_per_tier_and_segment_and_moves_into_at_risk(program, members):
    result = kpis.member_kpis(program=program, start=START, end=END)

    assert (result.total, result.new, result.current) == (3, 2, 4)  # eve joined at END
    assert [(t.name, t.members) for t in result.tiers] == [("Bronze", 2), ("Silver", 1), ("", 1)]
    assert result.tiers[-1].tier_id is None  # eve has no tier
    segments = {s.segment: s.members for s in result.segments}
    assert segments == {**{s.value: 0 for s in Segment}, "champions": 1, "at_risk": 2, "": 1}  # "": not scored
    assert [s.segment for s in result.segments][:2] == ["champions", "loyal"]  # in Segment order
    assert result.moved_into_at_risk == 2  # bob and dan (twice), not ann (8 days before the end)


def test_member_counts_without_the_breakdown_skip_two_queries(program, members, django_assert_num_queries):
    with django_assert_num_queries(2):
        result = kpis.member_kpis(program=program, start=START, end=END, with_breakdown=False)

    assert (result.total, result.new, result.moved_into_at_risk, result.tiers) == (3, 2, 2, [])


# --- monthly series ---------------------------------------------------------------------------


def test_revenue_by_month_members_and_guests_with_empty_months(program, quarter):
    rows = kpis.revenue_by_month(program=program, start=local(2025, 11, 1), end=END)

    assert [(r.month.isoformat(), r.member, r.guest) for r in rows] == [
        ("2025-11-01", Decimal("0.00"), Decimal("0.00")),  # no orders: the month is there, with zeros
        ("2025-12-01", Decimal("500.00"), Decimal("0.00")),
        ("2026-01-01", Decimal("100.00"), Decimal("0.00")),  # not cid's refunded or cancelled orders
        ("2026-02-01", Decimal("90.00"), Decimal("0.00")),  # 60 + (40 - 10)
        ("2026-03-01", Decimal("70.00"), Decimal("40.00")),  # not bob's order at END
    ]
    assert sum(r.total for r in rows[2:]) == Decimal("300.00")


def test_months_follow_the_local_time_zone(program):
    # 23:30 on 31 January in Berlin is 22:30 UTC: January, not February.
    order(program, "late", "10.00", local(2026, 1, 31, 23, 30), email="late@example.com")

    rows = kpis.revenue_by_month(program=program, start=START, end=local(2026, 3, 1))

    assert [(r.month.month, r.guest) for r in rows] == [(1, Decimal("10.00")), (2, Decimal("0.00"))]


def test_points_by_month_issued_and_redeemed(program):
    ann = enrol(program, "ann")
    points_credit(member=ann, points=500, kind=Kind.EARN, idempotency_key="e1", at=local(2026, 1, 5))
    points_credit(member=ann, points=70, kind=Kind.BONUS, idempotency_key="b1", at=local(2026, 1, 6))
    points_debit(member=ann, points=200, kind=Kind.REDEEM, idempotency_key="r1", at=local(2026, 2, 7))
    points_debit(member=ann, points=20, kind=Kind.EXPIRE, idempotency_key="x1", at=local(2026, 3, 8))

    rows = kpis.points_by_month(program=program, start=START, end=END)

    assert [(r.month.month, r.issued, r.redeemed) for r in rows] == [(1, 570, 0), (2, 0, 200), (3, 0, 0)]


# --- everything, and what it costs ------------------------------------------------------------


def test_dashboard_has_the_period_and_the_one_before(program, quarter):
    board = kpis.dashboard(program=program, start=START, end=END)

    assert board.current.orders.revenue == Decimal("300.00")
    assert (board.previous.start, board.previous.end) == (START - (END - START), START)
    assert board.previous.orders.orders == 1 and board.previous.orders.revenue == Decimal("500.00")  # ann, 31 Dec
    assert board.previous.points.liability is None  # "now" has no previous value
    assert board.previous.members.tiers == []
    assert [row.month.month for row in board.revenue_by_month] == [1, 2, 3]
    assert kpis.dashboard(program=program, start=START, end=END, compare=False).previous is None


def test_dashboard_lists_each_campaign_with_its_report(program):
    CampaignFactory(program=program, name="B: we miss you")
    CampaignFactory(program=program, name="A: come back", is_active=False)

    board = kpis.dashboard(program=program, start=START, end=END, compare=False)

    assert [(c.name, c.is_active) for c in board.campaigns] == [("A: come back", False), ("B: we miss you", True)]
    assert board.campaigns[0].report["sent"] == 0 and board.campaigns[0].report["uplift"] is None


def test_a_period_must_end_after_it_starts(program):
    with pytest.raises(ValueError):
        kpis.dashboard(program=program, start=END, end=START)


def _grow(program, n: int) -> None:
    """``n`` more members, each with two orders in the quarter and a guest order beside them."""
    for i in range(n):
        member = enrol(program, f"m{i}", joined=local(2026, 1, 2))
        order(program, f"m{i}-1", "10.00", local(2026, 1, 3 + i % 20), member=member)
        order(program, f"m{i}-2", "15.00", local(2026, 2, 3 + i % 20), member=member)
        order(program, f"g{i}", "12.00", local(2026, 3, 3 + i % 20), email=f"guest{i}@example.com")
        CustomerHealth.objects.create(
            member=member, program=program, segment=Segment.ACTIVE, segment_since=END, computed_at=END
        )
    for i in range(3):
        CampaignFactory(program=program, name=f"Campaign {i}")


def test_query_count_is_bounded_and_does_not_grow_with_the_data(program, quarter, django_assert_max_num_queries):
    _grow(program, 3)
    with CaptureQueriesContext(connection) as small:
        kpis.dashboard(program=program, start=START, end=END)
    for i in range(60):
        member = enrol(program, f"x{i}", joined=local(2026, 1, 2))
        order(program, f"x{i}-1", "20.00", local(2026, 1 + i % 3, 4), member=member)
        points_credit(member=member, points=20, kind=Kind.EARN, idempotency_key=f"x{i}", at=local(2026, 1, 4))

    # 25 at most (3 for NPS/CSAT, 3 for points at checkout), plus one per campaign
    with django_assert_max_num_queries(25 + 3 + 3):
        board = kpis.dashboard(program=program, start=START, end=END)

    with CaptureQueriesContext(connection) as large:
        kpis.dashboard(program=program, start=START, end=END)
    assert len(large.captured_queries) == len(small.captured_queries)
    assert board.current.orders.orders == 5 + 3 * 3 + 60
    with django_assert_max_num_queries(21 + 3 + 3):  # a 365-day period is its own CLV window
        kpis.dashboard(program=program, start=END - timedelta(days=365), end=END)


def test_points_used_at_checkout_count_once_and_the_liability_includes_held_codes(program):
    """Changing the points in the cart debits and gives back: neither counts as issued or redeemed;
    points used on an order count at checkout with their money; a code not used yet is still owed."""
    from loyalty.models import Reward
    from loyalty.services import member_enroll, points_adjust
    from loyalty.services.checkout_points import checkout_token_issue, points_discount_apply
    from shop import services as shop
    from tests.factories import ProductFactory, UserFactory

    Reward.objects.create(program=program, name="Pay", kind="points_discount", points_cost=100, points_step=100)
    user = UserFactory()
    member = member_enroll(program=program, user=user)[0]
    points_adjust(member=member, points=1000, reason="start", idempotency_key="start")

    def use(points, basket):
        token = checkout_token_issue(member=member, basket=basket)
        return points_discount_apply(
            member=member, checkout_token=token, points=points, order_total=Decimal("50"), currency="EUR"
        )

    use(500, "a")
    used = use(300, "a")  # replaces the 500
    product = ProductFactory(price=Decimal("40.00"))
    shop.mark_paid(order=shop.place_order(items={product.pk: 1}, user=user, discount_code=used.code))
    use(200, "b")  # held, not used yet

    now = timezone.now()
    result = kpis.points_kpis(program=program, start=now - timedelta(days=1), end=now + timedelta(days=1))
    assert (result.checkout_points, result.checkout_value, result.redeemed) == (300, Decimal("3.00"), 0)
    assert result.issued == 1000 + 37  # the start and the order's points; given-back points are not issued
    balance = 1000 - 300 - 200 + 37
    assert result.liability_points == balance + 200
    assert result.liability == program.money_value(balance) + Decimal("2.00")
