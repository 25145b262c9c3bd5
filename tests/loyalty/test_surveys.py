"""Post-purchase surveys: who is asked (once per order, consent, spacing, window), the email and
its signed link, the page, one answer per order, points once, edits for a day, bad input."""

from __future__ import annotations

import re
import smtplib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from loyalty.adapters.base import EventKind
from loyalty.exceptions import InvalidEvent
from loyalty.models import (
    EarningRule,
    Member,
    OutboundEmail,
    PointsEntry,
    Purchase,
    Survey,
    SurveyInvitation,
    SurveyResponse,
)
from loyalty.services import order_event_record, outbox
from loyalty.services import surveys as service
from loyalty.services.outbox import queue as outbox_queue
from loyalty.services.surveys import (
    SurveyAlreadyAnswered,
    SurveyAnswerInvalid,
    SurveyLinkInvalid,
    invitation_send,
    survey_response_submit,
    survey_token,
    survey_token_load,
    surveys_send_due,
)
from shop import services as shop_services
from tests.factories import ProductFactory, UserFactory, order_event, segment_member

pytestmark = pytest.mark.django_db

Status = SurveyInvitation.Status


# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def survey(program):
    EarningRule.objects.create(
        program=program, name="Survey answered", kind=EarningRule.Kind.SURVEY_ANSWERED, points=50
    )
    return Survey.objects.create(program=program, name="How was your order?", delay_days=7, window_days=14)


def consenting(program, email: str = "ann@example.com", *, consent: bool = True) -> Member:
    return segment_member(program, email=email, segment=None, consent=consent)


def bought(member: Member, *, days_ago: float, reference: str, amount: str = "40.00") -> Purchase:
    order_event_record(
        order_event(reference=reference, amount=amount, user=member.user, at=timezone.now() - timedelta(days=days_ago))
    )
    return Purchase.objects.get(order_reference=reference)


def run(captured, **kwargs):
    """surveys_send_due, its on-commit send tasks run straight away (no broker, no worker)."""
    with captured(execute=True):
        return surveys_send_due(**kwargs)


@pytest.fixture
def send_now(monkeypatch):
    """The outbox's after-commit nudge sends the queued survey emails in-process (the members'
    other emails, such as the welcome email, stay queued)."""
    sent: list[int] = []

    def nudge() -> bool:
        rows = OutboundEmail.objects.filter(kind="survey", status="queued")
        sent.extend(rows.values_list("invitation_id", flat=True))
        return bool(outbox.outbox_dispatch(ids=list(rows.values_list("pk", flat=True))))

    monkeypatch.setattr(outbox_queue, "outbox_nudge", nudge)
    monkeypatch.setattr(outbox_queue, "_nudge_registered", lambda: False)
    return sent


@pytest.fixture
def invited(program, survey, django_capture_on_commit_callbacks, send_now, mailoutbox):
    """An invitation sent to Ann for her order of 8 days ago."""
    member = consenting(program)
    bought(member, days_ago=8, reference="A-1")
    run(django_capture_on_commit_callbacks)
    invitation = SurveyInvitation.objects.get()
    assert invitation.status == Status.SENT
    return invitation


def page_url(invitation, **query) -> str:
    url = reverse("loyalty:survey", args=[survey_token(invitation)])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


# --- who is asked ------------------------------------------------------------------------------


def test_an_eligible_order_is_surveyed_once_and_a_rerun_sends_nothing(
    program, survey, django_capture_on_commit_callbacks, send_now, mailoutbox
):
    member = consenting(program)
    purchase = bought(member, days_ago=8, reference="A-1")

    assert run(django_capture_on_commit_callbacks) == {"surveys": 1, "queued": 1}
    assert run(django_capture_on_commit_callbacks) == {"surveys": 1, "queued": 0}

    invitation = SurveyInvitation.objects.get()
    assert (invitation.purchase, invitation.member, invitation.status) == (purchase, member, Status.SENT)
    assert invitation.to_email == "ann@example.com" and invitation.attempts == 1
    assert len(mailoutbox) == 1
    # A duplicate send task (acks_late redelivery) sends nothing.
    assert invitation_send(invitation_id=invitation.pk) == "not_queued"
    assert len(mailoutbox) == 1


def test_never_without_consent(program, survey, django_capture_on_commit_callbacks, send_now, mailoutbox):
    member = consenting(program, consent=False)
    bought(member, days_ago=8, reference="A-1")

    assert run(django_capture_on_commit_callbacks)["queued"] == 0
    assert not SurveyInvitation.objects.exists() and mailoutbox == []


def test_inactive_accounts_and_members_without_an_address_are_not_asked(
    program, survey, django_capture_on_commit_callbacks, send_now, mailoutbox
):
    inactive = consenting(program, "gone@example.com")
    inactive.user.is_active = False
    inactive.user.save()
    no_address = consenting(program, "blank@example.com")
    type(no_address.user).objects.filter(pk=no_address.user_id).update(email="")
    bought(inactive, days_ago=8, reference="A-1")
    bought(no_address, days_ago=8, reference="A-2")

    assert run(django_capture_on_commit_callbacks)["queued"] == 0


def test_consent_withdrawn_between_selection_and_sending_skips_the_email(
    program, survey, django_capture_on_commit_callbacks, mailoutbox
):
    member = consenting(program)
    bought(member, days_ago=8, reference="A-1")
    with django_capture_on_commit_callbacks(execute=False):  # selected, not sent yet
        surveys_send_due()
    assert OutboundEmail.objects.get(kind="survey").status == "queued"
    Member.objects.filter(pk=member.pk).update(marketing_consent=False)

    invitation = SurveyInvitation.objects.get()
    assert invitation_send(invitation_id=invitation.pk) == Status.SKIPPED
    invitation.refresh_from_db()
    assert invitation.status == Status.SKIPPED and "consent" in invitation.last_error
    assert mailoutbox == []


def test_a_vanished_invitation_is_no_error():
    assert invitation_send(invitation_id=987654) == "missing"


def test_one_survey_per_member_within_the_spacing_and_only_the_latest_order(
    program, survey, django_capture_on_commit_callbacks, send_now, mailoutbox
):
    member = consenting(program)
    bought(member, days_ago=12, reference="A-1")
    latest = bought(member, days_ago=9, reference="A-2")

    assert run(django_capture_on_commit_callbacks)["queued"] == 1
    assert SurveyInvitation.objects.get().purchase == latest

    # Another order becomes due a week later: still inside min_days_between (60), no second survey.
    bought(member, days_ago=7.5, reference="A-3")
    assert run(django_capture_on_commit_callbacks)["queued"] == 0
    # Past the spacing it would be asked again.
    later = timezone.now() + timedelta(days=61)
    bought(member, days_ago=-53, reference="A-4")  # paid 8 days before "later"
    assert run(django_capture_on_commit_callbacks, now=later)["queued"] == 1
    assert len(mailoutbox) == 2


def test_only_orders_inside_the_window_after_the_delay(program, survey, django_capture_on_commit_callbacks, send_now):
    too_recent = consenting(program, "recent@example.com")
    bought(too_recent, days_ago=6, reference="A-1")  # not yet 7 days
    too_old = consenting(program, "old@example.com")
    bought(too_old, days_ago=22, reference="A-2")  # older than delay + window (21 days)
    due = consenting(program, "due@example.com")
    bought(due, days_ago=20, reference="A-3")

    assert run(django_capture_on_commit_callbacks)["queued"] == 1
    assert SurveyInvitation.objects.get().member == due


def test_refunded_cancelled_and_guest_orders_are_not_surveyed(
    program, survey, django_capture_on_commit_callbacks, send_now
):
    refunded = consenting(program, "refunded@example.com")
    bought(refunded, days_ago=8, reference="R-1")
    order_event_record(order_event(EventKind.REFUNDED, reference="R-1", amount="40.00", user=refunded.user))
    cancelled = consenting(program, "cancelled@example.com")
    bought(cancelled, days_ago=8, reference="C-1")
    order_event_record(order_event(EventKind.CANCELLED, reference="C-1", user=cancelled.user))
    order_event_record(order_event(reference="G-1", email="guest@example.com", at=timezone.now() - timedelta(days=8)))
    partly = consenting(program, "partly@example.com")
    bought(partly, days_ago=8, reference="P-1")
    order_event_record(
        order_event(EventKind.REFUNDED, reference="P-1", amount="10.00", user=partly.user, event_id="r:P-1")
    )

    assert Purchase.objects.get(order_reference="G-1").member is None
    assert run(django_capture_on_commit_callbacks)["queued"] == 1
    assert SurveyInvitation.objects.get().purchase.order_reference == "P-1"  # partly refunded: still asked


def test_a_switched_off_survey_sends_nothing(program, survey, django_capture_on_commit_callbacks, send_now):
    bought(consenting(program), days_ago=8, reference="A-1")
    Survey.objects.filter(pk=survey.pk).update(is_active=False)
    assert run(django_capture_on_commit_callbacks) == {"surveys": 0, "queued": 0}


def test_selection_queries_do_not_grow_with_the_customer_base(
    program, survey, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    for n in range(15):
        bought(consenting(program, f"c{n}@example.com"), days_ago=8, reference=f"A-{n}")
    with django_assert_max_num_queries(10):  # the invitations and their outbox emails, per chunk
        with django_capture_on_commit_callbacks(execute=False):
            assert surveys_send_due()["queued"] == 15


def test_smtp_errors_are_retried_then_the_invitation_fails_with_the_error(
    program, survey, django_capture_on_commit_callbacks, monkeypatch, settings, mailoutbox
):
    settings.LOYALTY = {**getattr(settings, "LOYALTY", {}), "CAMPAIGN_MAX_ATTEMPTS": 2}
    bought(consenting(program), days_ago=8, reference="A-1")
    with django_capture_on_commit_callbacks(execute=False):
        surveys_send_due()
    invitation = SurveyInvitation.objects.get()

    def refuse(self, *args, **kwargs):
        raise smtplib.SMTPServerDisconnected("connection lost")

    monkeypatch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", refuse)
    assert invitation_send(invitation_id=invitation.pk) == Status.QUEUED  # again in a minute
    later = timezone.now() + timedelta(minutes=2)
    assert invitation_send(invitation_id=invitation.pk, now=later) == Status.FAILED
    invitation.refresh_from_db()
    assert invitation.attempts == 2 and "connection lost" in invitation.last_error
    assert invitation.email.status == "failed" and invitation.email.last_error == invitation.last_error


# --- the email ---------------------------------------------------------------------------------


def test_the_email_is_marketing_with_unsubscribe_and_a_working_survey_link(invited, mailoutbox, client):
    [email] = mailoutbox
    assert email.to == ["ann@example.com"]
    assert "A-1" in email.subject
    html = email.alternatives[0][0]
    unsubscribe = email.extra_headers["List-Unsubscribe"].strip("<>")
    assert email.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/loyalty/unsubscribe/" in unsubscribe and unsubscribe in email.body and unsubscribe in html
    assert "Rate your order" in html and "Rate your order" in email.body
    # The link carries its signing time: read it from the email rather than signing anew (a second
    # may have passed since the email was rendered), and check it opens this invitation.
    prefix = page_url(invited).rsplit("/", 2)[0] + "/"
    [url] = set(re.findall(re.escape(prefix) + r"[^\s\"?<]+", email.body))
    assert survey_token_load(url.rstrip("/").rsplit("/", 1)[1]) == invited
    for score in range(11):
        assert f"{url}?nps={score}" in html
    assert "50" in html  # the points an answer earns

    response = client.get(f"{url}?nps=9")
    assert response.status_code == 200
    assert b'value="9" id="id_nps_9" checked' in response.content
    invited.refresh_from_db()
    assert invited.opened_at is not None


def test_the_email_goes_out_in_the_surveys_language(
    program, survey, django_capture_on_commit_callbacks, send_now, mailoutbox
):
    Survey.objects.filter(pk=survey.pk).update(language="de")
    bought(consenting(program), days_ago=8, reference="A-1")
    run(django_capture_on_commit_callbacks)
    assert 'lang="de"' in mailoutbox[0].alternatives[0][0]


# --- the signed link ----------------------------------------------------------------------------


def _tampered_tokens(invitation, other) -> dict[str, str]:
    token = survey_token(invitation)
    payload, timestamp, signature = token.split(":")
    other_payload = survey_token(other).split(":")[0]
    return {
        "a changed character": token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1],
        "another id under this signature": f"{other_payload}:{timestamp}:{signature}",
        "the wrong salt": signing.dumps(invitation.pk, salt="loyalty.campaigns.unsubscribe"),
        "garbage": "not-a-token",
        "the preview token": "preview",
    }


def test_a_tampered_or_foreign_link_is_refused_and_stores_nothing(invited, program, client):
    other_member = consenting(program, "bob@example.com")
    other_purchase = bought(other_member, days_ago=9, reference="B-1")
    other = SurveyInvitation.objects.create(
        survey=invited.survey,
        program=program,
        member=other_member,
        purchase=other_purchase,
        created_at=timezone.now(),
    )
    for case, token in _tampered_tokens(invited, other).items():
        with pytest.raises(SurveyLinkInvalid):
            survey_token_load(token)
        url = reverse("loyalty:survey", args=[token])
        assert client.get(url).status_code == 400, case
        response = client.post(url, {"nps": "10"})
        assert response.status_code == 400, case
        assert "not valid" in response.content.decode()
    assert not SurveyResponse.objects.exists()
    assert SurveyInvitation.objects.get(pk=other.pk).opened_at is None


def test_an_expired_link_says_so(invited, client, monkeypatch):
    token = survey_token(invited)
    with pytest.raises(SurveyLinkInvalid) as refused:
        survey_token_load(token, max_age=timedelta(seconds=-1))
    assert refused.value.code == "survey_link_expired"
    monkeypatch.setattr(service, "LINK_MAX_AGE", timedelta(seconds=-1))
    monkeypatch.setattr(survey_token_load, "__kwdefaults__", {"max_age": timedelta(seconds=-1)})
    response = client.get(reverse("loyalty:survey", args=[token]))
    assert response.status_code == 400 and "expired" in response.content.decode()


def test_a_link_to_a_deleted_invitation_is_not_found(invited, client):
    url = page_url(invited)
    SurveyInvitation.objects.all().delete()
    assert client.get(url).status_code == 404


# --- answering ---------------------------------------------------------------------------------


def test_answering_stores_one_response_and_pays_the_points_once(invited, client):
    member = invited.member
    balance = Member.objects.get(pk=member.pk).balance
    url = page_url(invited)

    response = client.post(url, {"nps": "9", "csat": "5", "comment": "Lovely oil"})
    assert response.status_code == 302 and response["Location"].endswith("?saved=1")

    answer = SurveyResponse.objects.get()
    assert (answer.nps, answer.csat, answer.comment, answer.is_detractor) == (9, 5, "Lovely oil", False)
    assert answer.purchase == invited.purchase and answer.member == member
    assert Member.objects.get(pk=member.pk).balance == balance + 50

    thanks = client.get(response["Location"]).content.decode()
    assert "Thank you" in thanks and "50" in thanks and str(balance + 50) in thanks
    assert 'href="/accounts/' in thanks or "Go to my account" in thanks

    # A second submit within the day edits the answer; no new points, still one response.
    assert client.post(url, {"nps": "6", "csat": "2", "comment": ""}).status_code == 302
    answer.refresh_from_db()
    assert (answer.nps, answer.csat, answer.comment, answer.is_detractor) == (6, 2, "", True)
    assert SurveyResponse.objects.count() == 1
    assert Member.objects.get(pk=member.pk).balance == balance + 50
    assert PointsEntry.objects.filter(member=member, idempotency_key__startswith="survey:").count() == 1


def test_a_second_visit_within_a_day_shows_the_answers_for_editing(invited, client):
    survey_response_submit(invitation=invited, nps=8, csat=4, comment="Good")
    page = client.get(page_url(invited)).content.decode()
    assert "Your answers" in page and "Save my changes" in page
    assert 'id="id_nps_8" checked' in page and 'id="id_csat_3" checked' in page and ">Good</textarea>" in page


def test_later_the_answer_can_no_longer_change_and_the_page_says_so_politely(invited, client):
    answer, created = survey_response_submit(
        invitation=invited, nps=10, csat=5, comment="Perfect", now=timezone.now() - timedelta(hours=25)
    )
    assert created
    with pytest.raises(SurveyAlreadyAnswered):
        survey_response_submit(invitation=invited, nps=0, csat=1, comment="")

    url = page_url(invited)
    page = client.get(url).content.decode()
    assert "You already answered this survey" in page and "Perfect" in page and "novalidate" not in page
    response = client.post(url, {"nps": "0"})
    assert response.status_code == 302
    answer.refresh_from_db()
    assert (answer.nps, answer.comment) == (10, "Perfect")


def test_the_service_is_idempotent_per_order(invited):
    first, created = survey_response_submit(invitation=invited, nps=7, csat=None, comment="")
    again, created_again = survey_response_submit(invitation=invited, nps=7, csat=None, comment="")
    assert (created, created_again) == (True, False) and first.pk == again.pk
    assert first.points_awarded == 50 and again.points_awarded == 0
    entries = PointsEntry.objects.filter(member=invited.member, idempotency_key__startswith="survey:")
    assert [e.points for e in entries] == [50]


def test_no_points_without_an_active_rule(invited):
    EarningRule.objects.filter(kind=EarningRule.Kind.SURVEY_ANSWERED).update(is_active=False)
    from loyalty.models import Program

    Program.objects.filter(pk=invited.program_id).update(config_changed_at=timezone.now())  # as admin saves do
    invited.survey.program.refresh_from_db()
    response, _ = survey_response_submit(invitation=invited, nps=9, csat=None, comment="")
    assert response.points_awarded == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nps": "11"}, "Choose a score from 0 to 10."),
        ({"nps": "-1"}, "Choose a score from 0 to 10."),
        ({"csat": "0"}, "Choose a rating from 1 to 5."),
        ({"csat": "six"}, "Choose a rating from 1 to 5."),
        ({}, "Please answer at least one question."),
        ({"nps": "", "csat": "", "comment": "   "}, "Please answer at least one question."),
        ({"comment": "x" * 4001}, "Please keep your comment under 4000 characters"),
    ],
    ids=["nps 11", "nps -1", "csat 0", "csat text", "empty", "blank", "comment too long"],
)
def test_bad_input_re_renders_the_form_with_a_clear_error_and_stores_nothing(invited, client, data, message):
    balance = Member.objects.get(pk=invited.member_id).balance
    response = client.post(page_url(invited), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert "novalidate" in response.content.decode()
    assert not SurveyResponse.objects.exists()
    assert Member.objects.get(pk=invited.member_id).balance == balance


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"nps": 11}, "nps"),
        ({"nps": True}, "nps"),
        ({"csat": 0}, "csat"),
        ({"csat": 6}, "csat"),
        ({}, None),
        ({"comment": "y" * 4001}, "comment"),
    ],
)
def test_the_service_refuses_bad_answers_too(invited, kwargs, field):
    with pytest.raises(SurveyAnswerInvalid) as refused:
        survey_response_submit(invitation=invited, **kwargs)
    assert refused.value.extra["field"] == field
    assert not SurveyResponse.objects.exists()


def test_questions_the_survey_does_not_ask_are_not_stored(invited):
    Survey.objects.filter(pk=invited.survey_id).update(ask_nps=False)
    invited.survey.refresh_from_db()
    response, _ = survey_response_submit(invitation=invited, nps=3, csat=4, comment="")
    assert (response.nps, response.csat, response.is_detractor) == (None, 4, False)


def test_detractors_are_nps_0_to_6_or_csat_1_or_2():
    assert service.is_detractor(nps=6, csat=None) and service.is_detractor(nps=None, csat=2)
    assert not service.is_detractor(nps=7, csat=3) and not service.is_detractor(nps=None, csat=None)


def test_the_page_query_count_does_not_grow_with_history(invited, client, django_assert_max_num_queries, program):
    survey_response_submit(invitation=invited, nps=9, csat=5, comment="Fine")
    url = page_url(invited)
    with django_assert_max_num_queries(12) as few:
        client.get(url + "?saved=1")
    member = invited.member
    for n in range(25):  # a long history: orders, ledger entries, other invitations
        bought(member, days_ago=200 + n, reference=f"H-{n}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(url + "?saved=1")


def test_the_page_works_without_login_and_with_csrf_on(invited):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    page = strict.get(page_url(invited))
    assert page.status_code == 200 and "csrfmiddlewaretoken" in page.content.decode()
    assert strict.post(page_url(invited), {"nps": "8"}).status_code == 403
    token = page.cookies["csrftoken"].value
    form_token = page.content.decode().split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    assert token
    assert strict.post(page_url(invited), {"nps": "8", "csrfmiddlewaretoken": form_token}).status_code == 302


def test_the_form_is_accessible_fieldsets_legends_and_labels(invited, client):
    page = client.get(page_url(invited)).content.decode()
    assert page.count("<fieldset") == 2 and page.count("<legend>") == 2
    assert "How likely are you to recommend us to a friend?" in page
    assert "How satisfied are you with your order?" in page
    assert page.count('type="radio"') == 16
    assert page.count("<label") >= 17  # one per radio button and one for the comment
    assert 'for="id_comment"' in page


# --- product category ------------------------------------------------------------------------------


def test_the_category_flows_from_the_adapter_event_to_the_purchase(program):
    customer = UserFactory(email="cat@example.com")
    oil = ProductFactory(price=Decimal("18.50"), category="Pantry")
    soap = ProductFactory(price=Decimal("5.90"), category="Body care")
    order = shop_services.place_order(items={oil.pk: 1, soap.pk: 2}, user=customer, email=customer.email)
    shop_services.mark_paid(order=order)

    assert Purchase.objects.get(order_reference=order.number).category == "Pantry"  # the largest line


def test_the_adapters_written_out_category_query_agrees_with_the_orm_spelling(program):
    from config.loyalty_adapter import lines_by_size, order_category

    oil = ProductFactory(price=Decimal("6.00"), category="Pantry")
    soap = ProductFactory(price=Decimal("3.00"), category="Body care")
    gone = ProductFactory(price=Decimal("50.00"), category="Gone")
    tie = shop_services.place_order(items={soap.pk: 2, oil.pk: 1}, email="a@example.com")  # 6.00 each: first line
    orphan = shop_services.place_order(items={gone.pk: 1, oil.pk: 1}, email="b@example.com")
    gone.delete()  # the largest line keeps no product

    for order in (tie, orphan):
        orm = lines_by_size(order.pk).values_list("product__category", flat=True).first() or ""
        assert order_category(order.pk) == orm
    assert (order_category(tie.pk), order_category(orphan.pk)) == ("Body care", "")
    assert order_category(0) == ""  # an order without lines


def test_an_event_category_is_optional_and_at_most_100_characters(program):
    customer = UserFactory(email="cat@example.com")
    event = order_event(reference="A-9", user=customer)
    assert event.category == ""
    order_event_record(event)
    assert Purchase.objects.get(order_reference="A-9").category == ""
    with pytest.raises(InvalidEvent):
        order_event(reference="A-8", user=customer).__class__(**{**event.to_payload(), "category": "x" * 101})
