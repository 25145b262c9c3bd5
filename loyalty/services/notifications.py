"""Emails to members: rendered from ``loyalty/emails/<name>_subject.txt``, ``<name>.txt`` and
(optionally) ``<name>.html``, sent by a Celery task after the transaction commits."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string

from ..models import Member

logger = logging.getLogger("loyalty.notifications")


def notify_on_commit(*, member: Member, template: str, context: dict[str, Any] | None = None) -> None:
    """Queue email ``template`` to the member once the current transaction commits.

    ``context`` must be JSON-serialisable (ids, strings, numbers): the task reloads rows.
    Callers make it idempotent by calling it only when they create the row it reports
    (a TierChange, a Redemption...).
    """
    from ..tasks import send_member_email

    member_id, context = member.pk, dict(context or {})
    transaction.on_commit(lambda: _enqueue(send_member_email, member_id, template, context))


def _enqueue(task, *args) -> None:
    try:
        task.delay(*args)
    except Exception:
        logger.exception("Could not queue %s%r; the email is not sent.", task.name, args)


def send_member_email(*, member_id: int, template: str, context: dict[str, Any]) -> bool:
    """Render and send; ``False`` (nothing sent) when the member or their email is gone."""
    member = Member.objects.select_related("user", "program", "tier").filter(pk=member_id).first()
    email = getattr(member.user, "email", "") if member else ""
    if not email:
        logger.info("Email %s to member %s skipped: no member or no address.", template, member_id)
        return False
    ctx = {"member": member, "program": member.program, "user": member.user, **context}
    subject = " ".join(render_to_string(f"loyalty/emails/{template}_subject.txt", ctx).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"loyalty/emails/{template}.txt", ctx),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email],
    )
    try:
        message.attach_alternative(render_to_string(f"loyalty/emails/{template}.html", ctx), "text/html")
    except TemplateDoesNotExist:
        pass
    message.send()
    return True
