"""``manage.py loyalty_setup_schedules``: the loyalty beat tasks in django-celery-beat, from one
list of defaults (``loyalty.schedules.DEFAULT_SCHEDULES``), idempotent, and kind to staff's edits."""

from io import StringIO

import pytest
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from config.celery import app
from loyalty.models import Campaign
from loyalty.schedules import DEFAULT_SCHEDULES, beat_schedule, entry_name
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

#: name → (task, schedule) as the issue asks for them, written out rather than derived.
EXPECTED = {
    "loyalty-dispatch-emails": ("loyalty.tasks.dispatch_emails", "every 60 seconds"),
    "loyalty-process-pending-events": ("loyalty.tasks.process_pending_events", "every 10 seconds"),
    "loyalty-approve-pending-points": ("loyalty.tasks.approve_pending_points", "5 * * * *"),
    "loyalty-points-expire": ("loyalty.tasks.points_expire", "15 3 * * *"),
    "loyalty-remind-expiring-points": ("loyalty.tasks.remind_expiring_points", "0 9 * * *"),
    "loyalty-retry-unprocessed-events": ("loyalty.tasks.retry_unprocessed_events", "*/5 * * * *"),
    "loyalty-recompute-tiers": ("loyalty.tasks.recompute_tiers", "30 2 * * *"),
    "loyalty-award-birthday-bonuses": ("loyalty.tasks.award_birthday_bonuses", "30 6 * * *"),
    "loyalty-expire-reward-codes": ("loyalty.tasks.expire_reward_codes", "*/15 * * * *"),
    "loyalty-fit-health-models": ("loyalty.tasks.fit_health_models", "30 1 * * sun"),
    "loyalty-refresh-health": ("loyalty.tasks.refresh_health", "0 4 * * *"),
    "loyalty-send-monthly-statements": ("loyalty.tasks.send_monthly_statements", "0 8 1 * *"),
    "loyalty-send-survey-invitations": ("loyalty.tasks.send_survey_invitations", "20 * * * *"),
}


def setup(*args: str) -> str:
    out = StringIO()
    call_command("loyalty_setup_schedules", *args, stdout=out)
    return out.getvalue()


def schedule_of(periodic: PeriodicTask) -> str:
    if periodic.interval_id:
        return f"every {periodic.interval.every} {periodic.interval.period}"
    c = periodic.crontab
    return f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"


def loyalty_entries() -> dict[str, tuple[str, str]]:
    rows = PeriodicTask.objects.filter(name__in=EXPECTED).select_related("crontab", "interval")
    return {p.name: (p.task, schedule_of(p)) for p in rows}


def snapshot() -> list[tuple]:
    """Everything the command may write, to compare before and after."""
    return [
        *PeriodicTask.objects.order_by("name").values_list(
            "name", "task", "args", "kwargs", "enabled", "crontab_id", "interval_id", "description"
        ),
        *CrontabSchedule.objects.order_by("pk").values_list("pk", "minute", "hour", "day_of_week"),
        *IntervalSchedule.objects.order_by("pk").values_list("pk", "every", "period"),
    ]


def test_the_first_run_creates_every_loyalty_task_with_its_default(settings):
    output = setup()

    assert loyalty_entries() == EXPECTED
    for periodic in PeriodicTask.objects.filter(name__in=EXPECTED):
        assert periodic.enabled and (periodic.args, periodic.kwargs) == ("[]", "{}")
        if periodic.crontab_id:
            assert str(periodic.crontab.timezone) == settings.CELERY_TIMEZONE
    assert output.count(" created ") == 13
    assert "Beat tasks: 13 created. Campaigns: nothing." in output


def test_a_second_run_changes_nothing(program):
    CampaignFactory(program=program)
    setup()
    before = snapshot()

    output = setup()

    assert snapshot() == before
    assert "Beat tasks: 13 unchanged. Campaigns: 1 unchanged." in output


def test_a_schedule_staff_changed_survives_and_reset_restores_it(settings):
    setup()
    later = CrontabSchedule.objects.create(minute="30", hour="5", timezone=settings.TIME_ZONE)
    PeriodicTask.objects.filter(name="loyalty-refresh-health").update(crontab=later)  # edited in the beat admin
    paused = PeriodicTask.objects.get(name="loyalty-recompute-tiers")
    paused.enabled = False
    paused.save()

    kept = setup()

    assert loyalty_entries()["loyalty-refresh-health"] == ("loyalty.tasks.refresh_health", "30 5 * * *")
    assert PeriodicTask.objects.get(name="loyalty-recompute-tiers").enabled is False
    assert "kept      loyalty-refresh-health" in kept and "--reset restores it" in kept
    assert "Beat tasks: 11 unchanged, 2 kept." in kept

    reset = setup("--reset")

    assert loyalty_entries() == EXPECTED
    assert PeriodicTask.objects.get(name="loyalty-recompute-tiers").enabled is True
    assert "reset     loyalty-refresh-health" in reset and "was loyalty.tasks.refresh_health, 30 5 * * *" in reset
    assert "Beat tasks: 11 unchanged, 2 reset." in reset
    assert "Beat tasks: 13 unchanged." in setup("--reset")  # nothing left to reset


def test_a_dry_run_writes_nothing(program):
    CampaignFactory(program=program, name="Winback")
    PeriodicTask.objects.all().delete()
    before = snapshot()

    output = setup("--dry-run")

    assert snapshot() == before
    assert output.count("would be created") == 14
    assert "Dry run: nothing was written." in output
    assert setup().count(" created ") == 14  # the dry run reported what the real run does


def test_campaign_schedules_are_synced_and_orphans_removed(program):
    active = CampaignFactory(program=program, name="Winback")
    paused = CampaignFactory(program=program, name="Paused", is_active=False)
    PeriodicTask.objects.filter(name=f"loyalty-campaign-{active.pk}").delete()  # lost, e.g. a raw SQL cleanup
    PeriodicTask.objects.filter(name=f"loyalty-campaign-{paused.pk}").update(enabled=True)  # out of step
    Campaign.objects.filter(pk=paused.pk).update(name="Paused for now")
    gone = CampaignFactory(program=program, name="Gone")
    Campaign.objects.filter(pk=gone.pk).delete()  # the queryset delete also removes its entry...
    PeriodicTask.objects.create(  # ...but one left behind by a bulk SQL delete is cleaned up
        name=f"loyalty-campaign-{gone.pk}",
        task="loyalty.tasks.run_campaign",
        args=f"[{gone.pk}]",
        crontab=CrontabSchedule.objects.first(),
    )

    output = setup()

    assert PeriodicTask.objects.get(name=f"loyalty-campaign-{active.pk}").enabled is True
    assert PeriodicTask.objects.get(name=f"loyalty-campaign-{paused.pk}").enabled is False
    assert not PeriodicTask.objects.filter(name=f"loyalty-campaign-{gone.pk}").exists()
    assert f"created   loyalty-campaign-{active.pk}" in output
    assert f"updated   loyalty-campaign-{paused.pk}" in output and "disabled (campaign not active)" in output
    assert f"removed   loyalty-campaign-{gone.pk}" in output
    assert "Campaigns: 1 created, 1 updated, 1 removed." in output


def test_the_demo_settings_and_the_defaults_agree(settings):
    """CELERY_BEAT_SCHEDULE in config/settings.py lists the same entries as DEFAULT_SCHEDULES,
    and what beat copies from settings is what the command writes: both ways meet."""
    assert {name: entry_name(task) for name, task in zip(EXPECTED, DEFAULT_SCHEDULES, strict=True)} == {
        name: name for name in EXPECTED
    }
    loyalty_settings = {k: v for k, v in settings.CELERY_BEAT_SCHEDULE.items() if k.startswith("loyalty-")}
    assert loyalty_settings == beat_schedule()

    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        DatabaseScheduler.Entry.from_entry(name, app=app, **entry)  # what beat does when it starts
    assert "Beat tasks: 13 unchanged." in setup()



def test_the_renamed_expiry_task_keeps_the_entry_staff_had():
    """The expiry task became points_expire: the command moves the old beat entry to the new names
    (its schedule and state kept), drops a default copy beat made under the new name, and the old
    task name still runs."""
    setup()
    new = PeriodicTask.objects.get(name="loyalty-points-expire")
    old = PeriodicTask.objects.create(  # as an install before the rename had it, paused by staff
        name="loyalty-expire-points", task="loyalty.tasks.expire_points", crontab=new.crontab, enabled=False
    )

    output = setup()

    row = PeriodicTask.objects.get(name="loyalty-points-expire")
    assert (row.pk, row.task, row.enabled) == (old.pk, "loyalty.tasks.points_expire", False)
    assert not PeriodicTask.objects.filter(task="loyalty.tasks.expire_points").exists()
    assert "renamed   loyalty-points-expire" in output and "was loyalty-expire-points" in output
    assert {"loyalty.tasks.points_expire", "loyalty.tasks.expire_points"} <= set(app.tasks)
    assert "renamed" not in setup()  # once
