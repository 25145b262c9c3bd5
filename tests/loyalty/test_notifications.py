import pytest
from django.db import connection

from loyalty.models import OutboundEmail
from loyalty.services.notifications import member_email_queue, send_member_email

pytestmark = pytest.mark.django_db


def test_an_email_is_an_outbox_row_of_the_callers_transaction_once_per_key(member):
    member_email_queue(member=member, template="test_hello", key="hello:1", context={"n": 3})
    member_email_queue(member=member, template="test_hello", key="hello:1", context={"n": 4})
    member_email_queue(member=member, template="test_hello", key="hello:2", context={"n": 5})
    row = OutboundEmail.objects.get(key="hello:1")
    assert (row.key, row.kind, row.member, row.context, row.status) == (
        "hello:1",
        "test_hello",
        member,
        {"n": 3},
        "queued",
    )
    assert OutboundEmail.objects.filter(key__startswith="hello:").count() == 2
    nudges = [entry[1] for entry in connection.run_on_commit if getattr(entry[1], "loyalty_outbox_nudge", False)]
    assert len(nudges) == 1  # one nudge to the workers after the commit, however many emails


def test_the_task_renders_and_sends_through_the_mail_backend(member, mailoutbox, settings, tmp_path):
    (tmp_path / "loyalty" / "emails").mkdir(parents=True)
    (tmp_path / "loyalty" / "emails" / "test_hello_subject.txt").write_text("Hello {{ user.first_name }}\n")
    (tmp_path / "loyalty" / "emails" / "test_hello.txt").write_text("You have {{ n }} news from {{ program.name }}.")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]

    assert send_member_email(member_id=member.pk, template="test_hello", context={"n": 3}) is True

    assert [m.subject for m in mailoutbox] == ["Hello Maria"]
    assert mailoutbox[0].body == "You have 3 news from Rewards."
    assert mailoutbox[0].to == ["maria@example.com"]


def test_a_vanished_member_is_skipped(db, mailoutbox):
    assert send_member_email(member_id=987654, template="test_hello", context={}) is False
    assert mailoutbox == []
