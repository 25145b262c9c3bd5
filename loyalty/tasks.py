"""Celery tasks: thin wrappers that take ids or nothing and call a service."""

import logging

from celery import shared_task

from . import services

logger = logging.getLogger("loyalty.tasks")


@shared_task(acks_late=True, ignore_result=True)
def retry_unprocessed_events() -> dict[str, int]:
    """Beat task: retry order events whose processing failed (a bounded batch per run)."""
    return services.events_retry_unprocessed()


@shared_task(acks_late=True, ignore_result=True)
def process_pending_events() -> dict[str, int]:
    """Beat task (every few seconds) for ``EVENT_PROCESSING = "deferred"``: apply new events."""
    return services.events_process_pending()


@shared_task(acks_late=True, ignore_result=True)
def points_expire() -> int:
    """Beat task (daily): expire points by each programme's policy (lots past their date, inactive balances)."""
    return services.points_expire_due()


@shared_task(name="loyalty.tasks.expire_points", acks_late=True, ignore_result=True)
def expire_points() -> int:
    """The task's old name, still registered: queued messages and beat entries that name it still run."""
    return services.points_expire_due()


@shared_task(acks_late=True, ignore_result=True)
def dispatch_emails() -> dict[str, int]:
    """Send due emails from the outbox (beat, every minute; also nudged after a commit that
    queued one). Emails are rows first, so a lost or duplicate run loses or repeats nothing."""
    from .services.outbox import outbox_dispatch_due

    return outbox_dispatch_due()


@shared_task(acks_late=True, ignore_result=True)
def approve_pending_points() -> int:
    """Beat task (hourly): pending points whose approval period is over become spendable."""
    from .services.pending import pending_approve_due

    return pending_approve_due()


@shared_task(acks_late=True, ignore_result=True)
def award_birthday_bonuses() -> int:
    """Beat task (daily): birthday bonus rules pay members whose birthday is today, once a year."""
    from .services.rules import birthday_bonuses_award

    return birthday_bonuses_award()


@shared_task(acks_late=True, ignore_result=True)
def recompute_tiers() -> int:
    """Beat task (daily): re-evaluate every member's tier (downgrades after the retention period)."""
    from .services.tiers import tiers_recompute

    return tiers_recompute()


@shared_task(acks_late=True, ignore_result=True)
def expire_reward_codes() -> int:
    """Beat task (every 15 minutes): settle reward codes past their expiry (used, or expired with points
    back), so points used at checkout on an order never placed come back soon after their code lapses."""
    from .services.rewards import redemptions_expire_due

    return redemptions_expire_due()


@shared_task(acks_late=True, ignore_result=True)
def remind_expiring_points() -> int:
    """Beat task (daily): email members whose points expire soon (first and last-chance reminders,
    once per lot) and whose unused reward codes expire soon (once per code)."""
    from .services.expiry import expiry_last_chance_send, expiry_reminders_send
    from .services.rewards import redemption_expiry_reminders_send

    return expiry_reminders_send() + expiry_last_chance_send() + redemption_expiry_reminders_send()


@shared_task(acks_late=True, ignore_result=True)
def fit_health_models() -> int:
    """Beat task (weekly): refit each active programme's purchase and spend models."""
    from .services.health import health_fit_all

    return len(health_fit_all())


@shared_task(acks_late=True, ignore_result=True)
def refresh_health(program_id: int | None = None) -> int:
    """Beat task (nightly): score every member; each chunk of member ids goes to a worker of its own."""
    from .models import Program
    from .services.health import health_refresh_start

    programs = Program.objects.filter(is_active=True)
    if program_id is not None:
        programs = programs.filter(pk=program_id)
    chunks = 0
    for program in programs:
        run, ranges = health_refresh_start(program=program)
        if not ranges:
            refresh_health_chunk.delay(run.pk, 0, -1)  # nothing to score: the chunk closes the run
        for lo, hi in ranges:
            refresh_health_chunk.delay(run.pk, lo, hi)
        chunks += max(len(ranges), 1)
    return chunks


@shared_task(acks_late=True, ignore_result=True)
def refresh_health_chunk(run_id: int, lo: int, hi: int) -> int:
    """Score members ``lo``..``hi`` for a run; the last chunk to finish closes the run."""
    from .models import HealthRun
    from .services.health import health_chunk_done, health_refresh_range

    run = HealthRun.objects.select_related("program", "fit").filter(pk=run_id).first()
    if run is None:
        return 0
    scored = health_refresh_range(run=run, lo=lo, hi=hi) if lo <= hi else 0
    health_chunk_done(run_id=run_id)
    return scored


@shared_task(acks_late=True, ignore_result=True)
def run_campaign(campaign_id: int) -> dict[str, int] | None:
    """Beat task (one per campaign, django-celery-beat): queue the campaign's messages for today."""
    from .models import Campaign
    from .services.campaigns import campaign_run

    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        logger.warning("Campaign %s does not exist any more; its schedule has nothing to run.", campaign_id)
        return None
    return campaign_run(campaign=campaign)


@shared_task(acks_late=True, ignore_result=True)
def run_campaigns() -> dict[int, dict[str, int]]:
    """Beat task (daily) for shops without django-celery-beat: run every active campaign."""
    from .services.campaigns import campaigns_run_active

    return campaigns_run_active()


@shared_task(ignore_result=True)
def send_message(message_id: int | None = None, *args) -> dict[str, int]:
    """Former per-message task: tasks still in a broker from before the outbox send the outbox."""
    return dispatch_emails()


@shared_task(ignore_result=True)
def send_survey_invitation(invitation_id: int | None = None, *args) -> dict[str, int]:
    """Former per-invitation task: see :func:`send_message`."""
    return dispatch_emails()


@shared_task(ignore_result=True)
def send_member_email(member_id: int, template: str, context: dict) -> bool:
    """Former per-email task: a task still in a broker from before the outbox is queued in the
    outbox and sent (its key is new, so an email the old task already sent would repeat)."""
    from .services.notifications import send_member_email as send

    return send(member_id=member_id, template=template, context=context)


@shared_task(acks_late=True, ignore_result=True)
def send_monthly_statements() -> int:
    """Beat task (the 1st of each month): queue last month's points statement, once per member."""
    from .services.notifications import monthly_statements_send

    return monthly_statements_send()


@shared_task(acks_late=True, ignore_result=True)
def send_survey_invitations() -> dict[str, int]:
    """Beat task (hourly): invite the customers of orders paid ``delay`` days ago to the survey."""
    from .services.surveys import surveys_send_due

    return surveys_send_due()
