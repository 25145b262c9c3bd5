"""Member emails: one base layout, marketing vs transactional, reminders once, statements, previews."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from loyalty.management.commands.loyalty_preview_emails import sample_emails
from loyalty.models import EmailReceipt, Member, PointsEntry, Redemption
from loyalty.services.expiry import expiry_last_chance_send
from loyalty.services.notifications import MARKETING_EMAILS, monthly_statements_send, send_member_email
from loyalty.services.rewards import redemption_expiry_reminders_send
from tests.factories import paid_order

pytestmark = pytest.mark.django_db

ALL = sample_emails(timezone.localdate())


@pytest.fixture
def sent_at_once(emails_sent_on_commit):
    return emails_sent_on_commit


@pytest.mark.parametrize(("name", "template", "context"), ALL, ids=[row[0] for row in ALL])
def test_every_email_renders_text_and_html_with_the_shop_name(member, mailoutbox, settings, name, template, context):
    settings.LOYALTY = {**getattr(settings, "LOYALTY", {}), "SHOP_NAME": "Bottega Verde"}
    Member.objects.filter(pk=member.pk).update(marketing_consent=True)

    assert send_member_email(member_id=member.pk, template=template, context=context) is True

    [email] = mailoutbox
    html, mimetype = email.alternatives[0]
    assert mimetype == "text/html"
    for part in (email.subject, email.body, html):
        assert "{{" not in part and "{%" not in part
    assert "Bottega Verde" in email.body and "Bottega Verde" in html
    assert "max-width:560px" in html
    marketing = template in MARKETING_EMAILS
    assert ("List-Unsubscribe" in email.extra_headers) is marketing
    if marketing:
        assert email.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url = email.extra_headers["List-Unsubscribe"].strip("<>")
        assert url in email.body and url in html


@pytest.mark.parametrize(("name", "template", "context"), ALL, ids=[row[0] for row in ALL])
def test_consent_decides_marketing_emails_only(member, mailoutbox, name, template, context):
    assert not member.marketing_consent
    sent = send_member_email(member_id=member.pk, template=template, context=context)
    assert sent is (template not in MARKETING_EMAILS)
    assert len(mailoutbox) == int(sent)


def test_emails_render_in_the_member_language(member, mailoutbox, settings):
    settings.LANGUAGE_CODE = "de"
    send_member_email(member_id=member.pk, template="welcome", context={})
    assert 'lang="de"' in mailoutbox[0].alternatives[0][0]


def test_last_chance_reminder_goes_once_and_only_with_consent(
    program, customer, mailoutbox, sent_at_once, django_capture_on_commit_callbacks
):
    paid_order(total="40.00", user=customer, at=timezone.now() - timedelta(days=363))  # expires in 2 days
    member = Member.objects.get(user=customer)
    assert expiry_last_chance_send() == 0  # no consent
    Member.objects.filter(pk=member.pk).update(marketing_consent=True)
    entries = PointsEntry.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        assert expiry_last_chance_send() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert expiry_last_chance_send() == 0

    [email] = [m for m in mailoutbox if "Last chance" in m.subject]
    assert "Last chance: 40 points" in email.subject
    assert PointsEntry.objects.count() == entries  # the ledger is not touched
    assert EmailReceipt.objects.filter(member=member, template="points_last_chance").count() == 1


def test_code_expiring_reminder_goes_once_without_consent(
    member, mailoutbox, sent_at_once, django_capture_on_commit_callbacks
):
    from loyalty.services.rewards import reward_redeem
    from tests.loyalty.test_redemption import give, make_reward

    give(member, 1000)
    redemption = reward_redeem(member=member, reward=make_reward(member.program), idempotency_key="k", notify=False)
    Redemption.objects.filter(pk=redemption.pk).update(expires_at=timezone.now() + timedelta(days=2))

    with django_capture_on_commit_callbacks(execute=True):
        assert redemption_expiry_reminders_send() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert redemption_expiry_reminders_send() == 0

    [email] = [m for m in mailoutbox if redemption.code in m.body]
    assert redemption.code in email.body and "List-Unsubscribe" not in email.extra_headers


def test_monthly_statement_is_set_based_and_once_per_month(
    program, mailoutbox, sent_at_once, django_capture_on_commit_callbacks
):
    from tests.factories import UserFactory

    program.email_monthly_statement = True
    program.save()
    users = [UserFactory() for _ in range(5)]
    for user in users:
        paid_order(total="30.00", user=user, at=timezone.now() - timedelta(days=20))
    Member.objects.filter(user__in=users[:4]).update(marketing_consent=True)
    now = timezone.now().replace(day=1) + timedelta(days=40)  # some day of next month
    now = now.replace(day=1, hour=7)

    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert monthly_statements_send(now=now) == 4
    select_queries = [q for q in queries if q["sql"].lstrip().upper().startswith("SELECT")]
    assert len(select_queries) <= 8  # not one per member
    assert len(callbacks) == 1  # one nudge for the run
    callbacks[0]()
    statements = [m for m in mailoutbox if "statement" in m.subject.lower()]
    assert len(statements) == 4
    assert all("30" in m.body for m in statements)
    with django_capture_on_commit_callbacks(execute=True):
        assert monthly_statements_send(now=now) == 0
    assert len([m for m in mailoutbox if "statement" in m.subject.lower()]) == 4


def test_the_preview_command_writes_every_file_and_no_rows(member, tmp_path):
    counts = (Member.objects.count(), PointsEntry.objects.count(), EmailReceipt.objects.count())
    with CaptureQueriesContext(connection) as queries:
        call_command("loyalty_preview_emails", out=str(tmp_path), language="de")
    writes = [q for q in queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert writes == []
    assert (Member.objects.count(), PointsEntry.objects.count(), EmailReceipt.objects.count()) == counts
    for name, _template, _context in [*ALL, ("re_engagement", "", {})]:
        for suffix in (".html", ".txt", ".subject.txt"):
            assert (tmp_path / f"{name}{suffix}").read_text().strip(), name + suffix
    index = (tmp_path / "index.html").read_text()
    assert 'href="welcome.html"' in index and 'href="re_engagement.html"' in index
