"""Celery tasks: thin wrappers that take ids or nothing and call a service."""

from celery import shared_task

from . import services


@shared_task(acks_late=True, ignore_result=True)
def retry_unprocessed_events() -> dict[str, int]:
    """Beat task: retry order events whose processing failed (a bounded batch per run)."""
    return services.events_retry_unprocessed()



@shared_task(acks_late=True, ignore_result=True)
def process_pending_events() -> dict[str, int]:
    """Beat task (every few seconds) for ``EVENT_PROCESSING = "deferred"``: apply new events."""
    return services.events_process_pending()


@shared_task(acks_late=True, ignore_result=True)
def expire_points() -> int:
    """Beat task (daily): expire points by each programme's policy (lots past their date, inactive balances)."""
    return services.points_expire_due()


@shared_task(acks_late=True, ignore_result=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_member_email(member_id: int, template: str, context: dict) -> bool:
    """Send one member email (see ``services.notifications``); SMTP hiccups are retried."""
    from .services.notifications import send_member_email as send

    return send(member_id=member_id, template=template, context=context)


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
    """Beat task (daily): settle reward codes past their expiry (used, or expired with points back)."""
    from .services.rewards import redemptions_expire_due

    return redemptions_expire_due()


@shared_task(acks_late=True, ignore_result=True)
def remind_expiring_points() -> int:
    """Beat task (daily): email members whose points expire soon, once per lot."""
    from .services.expiry import expiry_reminders_send

    return expiry_reminders_send()
