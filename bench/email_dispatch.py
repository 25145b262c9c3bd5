"""How fast one worker process sends campaign emails from the outbox, measured in one run.

A campaign with a bonus-points incentive queues ``--messages`` emails (``campaign_run``: the
messages and their outbox rows); one process then sends them with the outbox's dispatcher
(``outbox_dispatch``: claim a batch with SKIP LOCKED, render, one mail connection, bulk marks
with the bonus points). For the ratio, the same run sends ``--baseline`` emails the way loyalty
did before the outbox: one transaction per email (member lock, message lock, the bonus credit,
templates compiled for the email, its own mail connection, the message saved).

Backends: Django's locmem backend (the sending cost is loyalty's alone), then a local SMTP
sink (aiosmtpd on 127.0.0.1) with one connection per batch and with one per email.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.email_dispatch

It creates and drops its own throwaway database (``bench_email_dispatch_<pid>``), runs with
DEBUG off, and checks at the end that every email was sent exactly once and that
``balance == sum(ledger)``. Target: at least 500 emails per second to locmem, at most 0.1
queries per email.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOYALTY_LOG_LEVEL", "WARNING")
os.environ.setdefault("DEBUG", "False")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))  # a throwaway database: any key will do

LOCMEM = "django.core.mail.backends.locmem.EmailBackend"
#: The worker process's own CPU seconds per row of the table (the database's work is not in it):
#: on a machine shared with other work the wall-clock rate understates what a worker does.
CPU_SECONDS: list[float] = []
SMTP = "django.core.mail.backends.smtp.EmailBackend"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="emails sent through the outbox (locmem)")
    parser.add_argument("--baseline", type=int, default=2_000, help="emails sent the old way, for the ratio")
    parser.add_argument("--smtp", type=int, default=2_000, help="emails sent to the local SMTP sink, per mode")
    args = parser.parse_args(argv)

    import django

    django.setup()
    from django.db import connection

    from bench.throwaway import throwaway_database

    if connection.vendor != "postgresql":
        print("note: DATABASE_URL is not PostgreSQL; the figures below are for", connection.vendor)
    with throwaway_database("bench_email_dispatch"):
        return run(args)


class QueryCounter:
    """Counts the statements Django sends (works with DEBUG off, unlike ``connection.queries``)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def make_members(program, n: int, *, first: int, segment: str) -> list[int]:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from loyalty.models import CustomerHealth, Member

    User = get_user_model()
    now = timezone.now()
    users = User.objects.bulk_create(
        User(username=f"m{i}@example.com", email=f"m{i}@example.com", first_name=f"Member{i}", password="!")
        for i in range(first, first + n)
    )
    members = Member.objects.bulk_create(
        Member(
            program=program,
            user=user,
            joined_at=now,
            marketing_consent=True,
            consent_changed_at=now,
            referral_code=f"B{user.pk}",
            balance=0,
        )
        for user in users
    )
    CustomerHealth.objects.bulk_create(
        CustomerHealth(member=m, program=program, segment=segment, segment_since=now, computed_at=now) for m in members
    )
    return [m.pk for m in members]


def queue(program, *, name: str, segment: str) -> tuple[object, int]:
    from loyalty.models import Campaign
    from loyalty.services.campaigns import campaign_run

    campaign = Campaign.objects.create(
        program=program,
        name=name,
        segments=[segment],
        incentive=Campaign.Incentive.POINTS,
        incentive_points=25,
        control_percent=0,
        cooldown_days=0,
        is_active=True,
    )
    counts = campaign_run(campaign=campaign)
    return campaign, counts["queued"]


def send_with_outbox(expected: int) -> tuple[float, int]:
    """Seconds and queries to send every due email with the outbox's dispatcher, as a worker does."""
    from django.db import connection

    from loyalty.services.outbox import outbox_dispatch

    counter = QueryCounter()
    sent = 0
    started, cpu = time.perf_counter(), time.process_time()
    with connection.execute_wrapper(counter):
        while True:
            counts = outbox_dispatch()
            sent += counts.get("sent", 0)
            if not counts["claimed"]:
                break
    elapsed = time.perf_counter() - started
    CPU_SECONDS.append(time.process_time() - cpu)
    assert sent == expected, (sent, expected)
    return elapsed, counter.count


def send_the_old_way(campaign, *, reuse_templates: bool = False) -> tuple[float, int, int]:
    """The per-message path loyalty had before the outbox, rebuilt from today's functions: per
    email a transaction with the member and message locks, the bonus credit, the templates
    compiled for that email, ``email.send()`` on its own connection, the message saved."""
    from django.db import connection, transaction
    from django.template import Template
    from django.utils import timezone

    from loyalty.models import Member, Message, OutboundEmail, PointsEntry
    from loyalty.services import campaigns as campaign_service
    from loyalty.services.campaigns import rendering as campaign_rendering
    from loyalty.services.ledger import points_credit

    ids = list(Message.objects.filter(campaign=campaign, status="queued").values_list("pk", flat=True))
    counter = QueryCounter()
    started, cpu = time.perf_counter(), time.process_time()
    with connection.execute_wrapper(counter):
        for message_id in ids:
            now = timezone.now()
            with transaction.atomic():
                member_id = Message.objects.filter(pk=message_id).values_list("member_id", flat=True).first()
                member = (
                    Member.objects.select_for_update(of=("self",)).select_related("program", "user").get(pk=member_id)
                )
                message = (
                    Message.objects.select_for_update(of=("self",))
                    .select_related("campaign__program", "campaign__incentive_reward")
                    .get(pk=message_id)
                )
                entry = points_credit(
                    member=member,
                    points=campaign.incentive_points,
                    kind=PointsEntry.Kind.BONUS,
                    idempotency_key=f"campaign:{message.pk}:bonus",
                    reference=f"campaign:{campaign.pk}",
                    at=now,
                    expires_at=now + timezone.timedelta(days=30),
                    locked=True,
                )
                message.incentive_reference = f"points:{entry.points}:entry:{entry.pk}"
                message.save(update_fields=["incentive_reference"])
            with transaction.atomic():
                message = (
                    Message.objects.select_for_update(of=("self",))
                    .select_related("campaign__program")
                    .get(pk=message_id)
                )
                member = Member.objects.select_related("program", "user", "tier").get(pk=message.member_id)
                if not reuse_templates:  # before: compiled once to check, once to render
                    Template(campaign.subject), Template(campaign.text_template), Template(campaign.html_template)
                    campaign_rendering._compiled.cache_clear()
                incentive = campaign_service.IssuedIncentive(f"We have added {entry.points} bonus points", None, "")
                email = campaign_service.message_email(message=message, member=member, incentive=incentive)
                email.send()
                message.attempts += 1
                message.status, message.sent_at, message.to_email = "sent", now, email.to[0]
                message.save(update_fields=["attempts", "status", "sent_at", "to_email"])
        OutboundEmail.objects.filter(message__campaign=campaign).update(status="sent")
    CPU_SECONDS.append(time.process_time() - cpu)
    return time.perf_counter() - started, counter.count, len(ids)


def run(args) -> dict:
    from django.conf import settings
    from django.core import mail
    from django.core.management import call_command

    from loyalty.conf import loyalty_settings
    from loyalty.models import Message, Program

    settings.EMAIL_BACKEND = LOCMEM
    mail.outbox = []
    loyalty_settings.reload()
    program = Program.objects.create(name="Bench", slug="bench", currency="EUR")
    total = args.messages + args.baseline + 2 * args.smtp
    print(f"email_dispatch: {total} members, campaign with 25 bonus points each ...")
    make_members(program, args.messages, first=0, segment="at_risk")
    make_members(program, args.baseline, first=args.messages, segment="almost_lost")
    make_members(program, args.smtp, first=args.messages + args.baseline, segment="dormant")
    make_members(program, args.smtp, first=args.messages + args.baseline + args.smtp, segment="previously_loyal")

    rows = []
    # 1. The outbox to locmem.
    _campaign, queued = queue(program, name="Outbox", segment="at_risk")
    seconds, queries = send_with_outbox(queued)
    outbox_rate = queued / seconds
    rows.append(("outbox, locmem", queued, seconds, queries))
    assert len(mail.outbox) == queued

    # 2. The old per-message path to locmem.
    old_campaign, _queued = queue(program, name="Before", segment="almost_lost")
    mail.outbox = []
    old_seconds, old_queries, old_n = send_the_old_way(old_campaign)
    old_rate = old_n / old_seconds
    rows.append(("per message (before), locmem", old_n, old_seconds, old_queries))

    # 3. A local SMTP sink: the outbox's one connection per batch, then one connection per email.
    smtp_rows = smtp_modes(program, args.smtp)
    rows += smtp_rows

    print()
    print("| path | emails | seconds | emails/s | worker CPU s | emails per CPU s | queries/email |")
    print("|---|---|---|---|---|---|---|")
    for (label, n, secs, q), cpu in zip(rows, CPU_SECONDS, strict=True):
        print(f"| {label} | {n:,} | {secs:.2f} | {n / secs:,.0f} | {cpu:.2f} | {n / cpu:,.0f} | {q / n:.3f} |")
    if hasattr(os, "getloadavg"):
        print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print()
    print(f"ratio outbox / before (locmem): {outbox_rate / old_rate:.1f} x")
    if len(smtp_rows) == 2:
        batch, each = (n / secs for _label, n, secs, _q in smtp_rows)
        print(f"ratio one connection per batch / one per email (SMTP sink): {batch / each:.1f} x")

    sent = Message.objects.filter(status="sent").count()
    assert sent == total, (sent, total)
    call_command("loyalty_check_ledger", stdout=open(os.devnull, "w"))
    print("every email sent once; loyalty_check_ledger: clean")
    print(f"email_dispatch: {outbox_rate:.0f} messages/s per worker (locmem)")
    return {"outbox_rate": outbox_rate, "old_rate": old_rate, "queries_per_message": queries / queued}


def smtp_modes(program, n: int) -> list[tuple[str, int, float, int]]:
    """Send ``n`` emails through a local aiosmtpd sink twice: the outbox, and one connection per email."""
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        print("aiosmtpd is not installed: the SMTP rows are left out")
        return []
    from django.conf import settings

    class Sink:
        received = 0

        async def handle_DATA(self, server, session, envelope):
            Sink.received += 1
            return "250 OK"

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    rows = []
    try:
        settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT = SMTP, "127.0.0.1", controller.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        _c, queued = queue(program, name="SMTP batch", segment="dormant")
        seconds, queries = send_with_outbox(queued)
        rows.append(("outbox, SMTP sink, one connection per batch", queued, seconds, queries))
        campaign, _queued = queue(program, name="SMTP each", segment="previously_loyal")
        old_seconds, old_queries, old_n = send_the_old_way(campaign, reuse_templates=True)
        rows.append(("per message (before), SMTP sink, one connection each", old_n, old_seconds, old_queries))
        assert Sink.received == queued + old_n, (Sink.received, queued, old_n)
    finally:
        controller.stop()
        settings.EMAIL_BACKEND = LOCMEM
    return rows


if __name__ == "__main__":
    main()
