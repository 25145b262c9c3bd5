"""Loyalty's periodic (beat) tasks and their default schedules: the one list every way of
scheduling them reads.

- With django-celery-beat, ``manage.py loyalty_setup_schedules`` (:func:`schedules_setup`)
  writes them to the database as ``PeriodicTask`` rows, which staff then edit in admin.
- Without it, or if you prefer settings: ``CELERY_BEAT_SCHEDULE = {**beat_schedule(), ...}``.

Times are in ``CELERY_TIMEZONE`` (else ``TIME_ZONE``). Campaigns are not listed: each has its
own entry, kept in step by ``services.campaigns.campaign_schedule_sync``.

Importable from settings: nothing Django is imported at module level.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

#: Task name → default schedule. A number is an interval in seconds; a dict holds crontab
#: fields (those left out are ``"*"``).
DEFAULT_SCHEDULES: dict[str, float | dict[str, str]] = {
    # The outbox sweep: sends what no nudge reached (broker outage, lost task, dead worker).
    "loyalty.tasks.dispatch_emails": 60,
    # Only does work with LOYALTY["EVENT_PROCESSING"] = "deferred".
    "loyalty.tasks.process_pending_events": 10,
    "loyalty.tasks.approve_pending_points": {"minute": "5"},
    "loyalty.tasks.points_expire": {"hour": "3", "minute": "15"},
    "loyalty.tasks.remind_expiring_points": {"hour": "9", "minute": "0"},
    "loyalty.tasks.retry_unprocessed_events": {"minute": "*/5"},
    "loyalty.tasks.recompute_tiers": {"hour": "2", "minute": "30"},
    "loyalty.tasks.award_birthday_bonuses": {"hour": "6", "minute": "30"},
    # Every 15 minutes: points used at checkout come back soon after their code expires unused (2 h).
    "loyalty.tasks.expire_reward_codes": {"minute": "*/15"},
    # Customer health: refit the purchase model weekly, score every member nightly (before campaigns).
    "loyalty.tasks.fit_health_models": {"hour": "1", "minute": "30", "day_of_week": "sun"},
    "loyalty.tasks.refresh_health": {"hour": "4", "minute": "0"},
    # Only does work for programmes with the monthly statement switched on.
    "loyalty.tasks.send_monthly_statements": {"day_of_month": "1", "hour": "8", "minute": "0"},
    # Post-purchase surveys: orders paid a survey's delay ago, hourly (once per order).
    "loyalty.tasks.send_survey_invitations": {"minute": "20"},
}
#: Beat tasks renamed: old task name → new. :func:`schedules_setup` moves a django-celery-beat entry
#: that still names the old task to the new task and entry name, keeping its schedule and state; the
#: old task names stay registered in ``loyalty.tasks`` (queued messages, settings copied from an
#: earlier install.md). docs/upgrading.md, "Renamed services and tasks".
RENAMED_TASKS = {"loyalty.tasks.expire_points": "loyalty.tasks.points_expire"}
CRONTAB_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")  # cron's order
_CAMPAIGN_ENTRY = re.compile(r"^loyalty-campaign-(\d+)$")


def entry_name(task: str) -> str:
    """The beat entry's name: ``loyalty.tasks.points_expire`` → ``loyalty-points-expire``."""
    return "loyalty-" + task.rsplit(".", 1)[-1].replace("_", "-")


def crontab_fields(spec: dict[str, str]) -> dict[str, str]:
    """All five crontab fields of a default, ``"*"`` where it leaves one out."""
    return {field: str(spec.get(field, "*")) for field in CRONTAB_FIELDS}


def describe(spec: float | dict[str, str]) -> str:
    if isinstance(spec, dict):
        return " ".join(crontab_fields(spec).values())
    return f"every {spec:g} seconds"


def beat_schedule() -> dict[str, dict]:
    """The defaults as ``CELERY_BEAT_SCHEDULE`` entries (names as :func:`entry_name`)."""
    from celery.schedules import crontab

    return {
        entry_name(task): {
            "task": task,
            "schedule": crontab(**crontab_fields(spec)) if isinstance(spec, dict) else float(spec),
        }
        for task, spec in DEFAULT_SCHEDULES.items()
    }


# --- writing them to django-celery-beat ------------------------------------------------------


@dataclass(frozen=True)
class ScheduleChange:
    """What :func:`schedules_setup` did to one entry."""

    name: str
    action: str  # created, unchanged, kept, reset (beat tasks); created, updated, unchanged, removed (campaigns)
    detail: str
    campaign: bool = False


def _timezone() -> str:
    from django.conf import settings

    return str(getattr(settings, "CELERY_TIMEZONE", None) or settings.TIME_ZONE)


def _current(periodic) -> str:
    if periodic.crontab_id:
        c = periodic.crontab
        return f"{' '.join(str(getattr(c, f)) for f in CRONTAB_FIELDS)} ({c.timezone})"
    if periodic.interval_id:
        return f"every {periodic.interval.every} {periodic.interval.period}"
    if periodic.solar_id:
        return str(periodic.solar)
    if periodic.clocked_id:
        return str(periodic.clocked)
    return "no schedule"


def _is_default(periodic, task: str, spec: float | dict[str, str], tz: str) -> bool:
    """True if the entry is as the defaults would write it: task, schedule, no arguments, enabled."""
    try:
        no_arguments = json.loads(periodic.args or "[]") == [] and json.loads(periodic.kwargs or "{}") == {}
    except ValueError:
        no_arguments = False
    if periodic.task != task or not periodic.enabled or not no_arguments or periodic.solar_id or periodic.clocked_id:
        return False
    if isinstance(spec, dict):
        c = periodic.crontab
        return (
            periodic.interval_id is None
            and c is not None
            and all(str(getattr(c, field)) == value for field, value in crontab_fields(spec).items())
            and str(c.timezone) == tz
        )
    i = periodic.interval
    return periodic.crontab_id is None and i is not None and (i.every, i.period) == (int(spec), i.SECONDS)


def _apply_default(periodic, task: str, spec: float | dict[str, str], tz: str) -> None:
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule

    periodic.task, periodic.args, periodic.kwargs, periodic.enabled = task, "[]", "{}", True
    periodic.interval = periodic.crontab = periodic.solar = periodic.clocked = None
    periodic.one_off = False
    if isinstance(spec, dict):
        fields = {**crontab_fields(spec), "timezone": tz}
        periodic.crontab = CrontabSchedule.objects.filter(**fields).first() or CrontabSchedule.objects.create(**fields)
    else:
        every = {"every": int(spec), "period": IntervalSchedule.SECONDS}
        periodic.interval = IntervalSchedule.objects.filter(**every).first() or IntervalSchedule.objects.create(**every)
    periodic.description = f"Loyalty: {task} (default {describe(spec)}; manage.py loyalty_setup_schedules)"
    periodic.save()  # save(), not update(): beat notices the change through PeriodicTasks


def _campaign_state(name: str) -> dict | None:
    from django_celery_beat.models import PeriodicTask

    fields = ("task", "args", "enabled", "description", "crontab_id", "interval_id", "solar_id", "clocked_id")
    return PeriodicTask.objects.filter(name=name).values(*fields).first()


def _follow_renames() -> list[ScheduleChange]:
    """Entries that name a renamed task (:data:`RENAMED_TASKS`) name the new one; the default entry
    takes the new entry name, replacing a default copy beat may have made from the new settings."""
    from django_celery_beat.models import PeriodicTask

    changes = []
    for old, new in RENAMED_TASKS.items():
        for periodic in PeriodicTask.objects.filter(task=old).order_by("pk"):
            was = periodic.name
            if periodic.name == entry_name(old):
                for duplicate in PeriodicTask.objects.filter(name=entry_name(new)):
                    duplicate.delete()  # instance delete: beat is told
                periodic.name = entry_name(new)
            periodic.task = new
            periodic.save()  # save(), not update(): beat notices the change through PeriodicTasks
            changes.append(ScheduleChange(periodic.name, "renamed", f"was {was}, {old}; schedule kept"))
    return changes


def schedules_setup(*, reset: bool = False) -> list[ScheduleChange]:
    """Register every loyalty beat task as a django-celery-beat ``PeriodicTask`` and sync one
    entry per campaign. Idempotent: a second call changes nothing.

    An entry of a renamed task (:data:`RENAMED_TASKS`) first follows the new name. A missing
    entry is created with its default. An entry that differs from it (staff changed
    the schedule, disabled it, gave it arguments) is kept, unless ``reset``, which restores the
    default and enables it. Campaign entries go through ``campaign_schedule_sync`` (which keeps
    staff's schedule, ``reset`` or not); entries named ``loyalty-campaign-<id>`` whose campaign is
    gone are deleted. Needs django-celery-beat in ``INSTALLED_APPS``.
    """
    from django_celery_beat.models import PeriodicTask

    from .models import Campaign
    from .services.campaigns import SCHEDULE_TASK, campaign_schedule_name, campaign_schedule_sync

    tz = _timezone()
    changes: list[ScheduleChange] = _follow_renames()
    for task, spec in DEFAULT_SCHEDULES.items():
        name = entry_name(task)
        default = f"{describe(spec)}" + (f" ({tz})" if isinstance(spec, dict) else "")
        periodic = PeriodicTask.objects.select_related("crontab", "interval").filter(name=name).first()
        if periodic is None:
            _apply_default(PeriodicTask(name=name), task, spec, tz)
            changes.append(ScheduleChange(name, "created", f"{task}, {default}"))
        elif _is_default(periodic, task, spec, tz):
            changes.append(ScheduleChange(name, "unchanged", f"{task}, {default}"))
        elif reset:
            was = f"{periodic.task}, {_current(periodic)}{'' if periodic.enabled else ', disabled'}"
            _apply_default(periodic, task, spec, tz)
            changes.append(ScheduleChange(name, "reset", f"{task}, {default} (was {was})"))
        else:
            now = f"{periodic.task}, {_current(periodic)}{'' if periodic.enabled else ', disabled'}"
            changes.append(ScheduleChange(name, "kept", f"{now}; default {default}; --reset restores it"))

    names = set()
    for campaign in Campaign.objects.order_by("pk"):
        name = campaign_schedule_name(campaign.pk)
        names.add(name)
        before = _campaign_state(name)
        periodic = campaign_schedule_sync(campaign=campaign)
        action = "created" if before is None else "unchanged" if before == _campaign_state(name) else "updated"
        state = "enabled" if periodic.enabled else "disabled (campaign not active)"
        changes.append(ScheduleChange(name, action, f"“{campaign.name}”, {_current(periodic)}, {state}", campaign=True))
    for periodic in PeriodicTask.objects.filter(task=SCHEDULE_TASK, name__startswith="loyalty-campaign-"):
        if _CAMPAIGN_ENTRY.match(periodic.name) and periodic.name not in names:
            periodic.delete()  # instance delete: beat is told
            changes.append(ScheduleChange(periodic.name, "removed", "its campaign no longer exists", campaign=True))
    return changes
