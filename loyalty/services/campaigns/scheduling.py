"""When a campaign sends: the local send window, and its django-celery-beat entry kept in step."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.apps import apps
from django.conf import settings
from django.utils import timezone

from ...models import Campaign

SCHEDULE_TASK = "loyalty.tasks.run_campaign"


def campaign_next_send_at(*, campaign: Campaign, now: datetime) -> datetime | None:
    """When the send window next opens, or ``None`` if ``now`` is inside it (or there is none).

    The window is ``send_after`` (inclusive) to ``send_before`` (exclusive) in local time;
    ``send_after`` later than ``send_before`` wraps midnight (22:00 to 06:00).
    """
    after, before = campaign.send_after, campaign.send_before
    if (after is None and before is None) or after == before:
        return None
    tz = timezone.get_current_timezone()
    local = timezone.localtime(now, tz)
    moment, start = local.time(), after or time(0)
    if before is None:
        inside = moment >= start
    elif start < before:
        inside = start <= moment < before
    else:
        inside = moment >= start or moment < before
    if inside:
        return None
    day = local.date() if moment < start else local.date() + timedelta(days=1)
    return timezone.make_aware(datetime.combine(day, start), tz)


# --- schedules (django-celery-beat) ------------------------------------------------------------


def campaign_schedule_name(campaign_id: int) -> str:
    return f"loyalty-campaign-{campaign_id}"


def campaign_schedule_sync(*, campaign: Campaign):
    """Keep the campaign's beat entry (``PeriodicTask``) in step: created with a daily 10:00
    schedule in ``TIME_ZONE`` the first time, enabled while the campaign is active. A
    schedule staff changed in admin is kept. ``None`` without django-celery-beat."""
    if not apps.is_installed("django_celery_beat"):
        return None
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    name = campaign_schedule_name(campaign.pk)
    periodic = PeriodicTask.objects.filter(name=name).first() or PeriodicTask(name=name)
    wanted = {
        "task": SCHEDULE_TASK,
        "args": f"[{campaign.pk}]",
        "enabled": bool(campaign.is_active),
        "description": f"Re-engagement campaign “{campaign.name}” (loyalty)",
    }
    kinds = ("interval", "crontab", "solar", "clocked")
    has_schedule = any(getattr(periodic, f"{kind}_id") is not None for kind in kinds)
    if periodic.pk and has_schedule and all(getattr(periodic, key) == value for key, value in wanted.items()):
        return periodic
    for key, value in wanted.items():
        setattr(periodic, key, value)
    if not has_schedule:
        daily = {"minute": "0", "hour": "10", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}
        periodic.crontab = CrontabSchedule.objects.filter(
            **daily, timezone=settings.TIME_ZONE
        ).first() or CrontabSchedule.objects.create(**daily, timezone=settings.TIME_ZONE)
    periodic.save()  # save(), not update(): beat notices the change through PeriodicTasks
    return periodic


def campaign_schedule_delete(*, campaign_id: int) -> None:
    if not apps.is_installed("django_celery_beat"):
        return
    from django_celery_beat.models import PeriodicTask

    for periodic in PeriodicTask.objects.filter(name=campaign_schedule_name(campaign_id)):
        periodic.delete()  # instance delete: beat is told
