"""What a campaign achieved against its control group."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Count, Q, Sum

from ..models import Message

_CENT = Decimal("0.01")


_PERCENT = Decimal("0.01")


def _rate(part: int, whole: int) -> Decimal | None:
    """``part / whole`` in percent (exact Decimal), ``None`` when ``whole`` is 0."""
    return Decimal(part) * 100 / Decimal(whole) if whole else None


def _rounded(value: Decimal | None) -> Decimal | None:
    return value.quantize(_PERCENT) if value is not None else None


def campaign_report(*, campaign) -> dict:
    """What a campaign achieved against its control group: one aggregate query over its messages.

    Counts are messages (one per member and cycle). ``eligible``: every row, control included;
    ``opened``/``clicked``/``converted``/``revenue`` of sent messages. Rates are percentages
    (``conversion_rate`` = converted / sent); ``uplift`` = treatment rate - control rate in
    percentage points, ``relative_uplift`` = uplift / control rate in percent. ``None`` when a
    rate's denominator is 0. Money is Decimal in the programme's currency.
    """
    status = Message.Status
    sent, control = Q(status=status.SENT), Q(status=status.CONTROL)
    totals = Message.objects.filter(campaign=campaign).aggregate(
        eligible=Count("pk"),
        queued=Count("pk", filter=Q(status=status.QUEUED)),
        sent=Count("pk", filter=sent),
        failed=Count("pk", filter=Q(status=status.FAILED)),
        skipped=Count("pk", filter=Q(status=status.SKIPPED)),
        opened=Count("pk", filter=sent & Q(opened_at__isnull=False)),
        clicked=Count("pk", filter=sent & Q(clicked_at__isnull=False)),
        unsubscribed=Count("pk", filter=Q(unsubscribed_at__isnull=False)),
        converted=Count("pk", filter=sent & Q(converted_at__isnull=False)),
        sent_revenue=Sum("revenue", filter=sent & Q(converted_at__isnull=False)),
        control=Count("pk", filter=control),
        control_converted=Count("pk", filter=control & Q(converted_at__isnull=False)),
        control_revenue=Sum("revenue", filter=control & Q(converted_at__isnull=False)),
    )
    treatment_rate = _rate(totals["converted"], totals["sent"])
    control_rate = _rate(totals["control_converted"], totals["control"])
    uplift = treatment_rate - control_rate if treatment_rate is not None and control_rate is not None else None
    relative = uplift * 100 / control_rate if uplift is not None and control_rate else None
    return {
        **{key: totals[key] for key in ("eligible", "queued", "sent", "failed", "skipped", "opened", "clicked")},
        "unsubscribed": totals["unsubscribed"],
        "converted": totals["converted"],
        "revenue": (totals["sent_revenue"] or Decimal("0")).quantize(_CENT),
        "conversion_rate": _rounded(treatment_rate),
        "control": {
            "members": totals["control"],
            "converted": totals["control_converted"],
            "revenue": (totals["control_revenue"] or Decimal("0")).quantize(_CENT),
            "conversion_rate": _rounded(control_rate),
        },
        "uplift": _rounded(uplift),
        "relative_uplift": _rounded(relative),
    }
