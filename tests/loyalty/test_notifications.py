import pytest

from loyalty.services.notifications import notify_on_commit
from loyalty.tasks import send_member_email

pytestmark = pytest.mark.django_db


def test_an_email_is_queued_on_commit_only(member, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        notify_on_commit(member=member, template="test_hello", context={"n": 3})
    assert len(callbacks) == 1


def test_the_task_renders_and_sends_through_the_mail_backend(member, mailoutbox, settings, tmp_path):
    (tmp_path / "loyalty" / "emails").mkdir(parents=True)
    (tmp_path / "loyalty" / "emails" / "test_hello_subject.txt").write_text("Hello {{ user.first_name }}\n")
    (tmp_path / "loyalty" / "emails" / "test_hello.txt").write_text("You have {{ n }} news from {{ program.name }}.")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]

    assert send_member_email(member.pk, "test_hello", {"n": 3}) is True

    assert [m.subject for m in mailoutbox] == ["Hello Maria"]
    assert mailoutbox[0].body == "You have 3 news from Rewards."
    assert mailoutbox[0].to == ["maria@example.com"]


def test_a_vanished_member_is_skipped(db, mailoutbox):
    assert send_member_email(987654, "test_hello", {}) is False
    assert mailoutbox == []
