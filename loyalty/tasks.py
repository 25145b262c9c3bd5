"""Celery tasks: thin wrappers that take ids or nothing and call a service."""

from celery import shared_task
from django.db import OperationalError

from . import services


@shared_task(acks_late=True, ignore_result=True)
def retry_unprocessed_events() -> dict[str, int]:
    """Beat task: retry order events whose processing failed (a bounded batch per run)."""
    return services.events_retry_unprocessed()


@shared_task(acks_late=True, ignore_result=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def process_order_event(event_key: str) -> str | None:
    """Apply one order event recorded in deferred mode (safe to run twice)."""
    event = services.event_process(event_key=event_key)
    return event.status if event else None
