"""Staff tools on a campaign's admin page: the email preview, a test send to oneself, "Run now"
with a confirmation, and who may use them. Previews and tests write nothing and send nothing
to customers."""

import html
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from loyalty.models import Campaign, Member, Message, PointsEntry, Redemption, Reward
from loyalty.services.campaigns import PREVIEW_PIXEL, campaign_render
from tests.factories import CampaignFactory, ProgramFactory, UserFactory, segment_member

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def shop(settings):
    settings.LOYALTY = {**settings.LOYALTY, "SHOP_NAME": "Demo Shop", "SITE_URL": "http://localhost:8000"}


@pytest.fixture
def campaign(program):
    return CampaignFactory(program=program, name="We miss you")  # 200 bonus points, at-risk members


@pytest.fixture
def maria(program):
    member = segment_member(program, email="maria@example.com", first_name="Maria")
    Member.objects.filter(pk=member.pk).update(balance=120)
    return member


def preview_url(campaign) -> str:
    return reverse("admin:loyalty_campaign_preview", args=[campaign.pk])


def send_test_url(campaign) -> str:
    return reverse("admin:loyalty_campaign_send_test", args=[campaign.pk])


def run_url(campaign) -> str:
    return reverse("admin:loyalty_campaign_run", args=[campaign.pk])


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def nothing_written() -> tuple[int, int, int]:
    return Message.objects.count(), PointsEntry.objects.count(), Redemption.objects.count()


def staff_user(*codenames: str, email: str = "staff@example.com"):
    user = UserFactory(email=email, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="loyalty", codename__in=codenames))
    return user


# --- preview -------------------------------------------------------------------------------------------


def test_the_preview_renders_subject_html_and_text_for_the_chosen_member(admin_client, program, campaign, maria):
    segment_member(program, email="other@example.com", first_name="Otto")
    before = nothing_written()

    response = admin_client.get(preview_url(campaign), {"member": maria.pk})

    assert response.status_code == 200
    rendered = response.context["rendered"]
    assert response.context["member"] == maria
    assert rendered.subject == "Maria, we miss you at Demo Shop"
    # The balance the real email shows: 120 now, plus the 200 bonus points it credits first.
    assert "Hello Maria," in rendered.text and "You have 320 points" in rendered.text
    assert "We have added 200 bonus points to your account" in rendered.text
    assert "Hello Maria," in rendered.html and "<strong>320 points</strong>" in rendered.html
    # The HTML goes into a sandboxed iframe's srcdoc, escaped; the text into a <pre>, escaped.
    assert 'sandbox=""' in response.text
    assert f'srcdoc="{html.escape(rendered.html)}"' in response.text
    assert f'<pre class="loyalty-preview-text">{html.escape(rendered.text)}</pre>' in response.text
    assert html.escape(rendered.subject) in response.text
    # Nothing tracked, nothing written, nothing sent.
    assert "/m/" not in rendered.html and PREVIEW_PIXEL in rendered.html
    assert rendered.headers["List-Unsubscribe"] == "<http://localhost:8000/loyalty/unsubscribe/preview/>"
    assert nothing_written() == before
    assert Member.objects.get(pk=maria.pk).balance == 120


def test_the_default_member_is_one_of_the_target_segments_else_any_else_a_sample(admin_client, program, campaign):
    sample = admin_client.get(preview_url(campaign))
    assert sample.context["member"].pk is None
    assert sample.context["rendered"].subject == "Alex, we miss you at Demo Shop"
    assert "sample member" in sample.text
    assert not Member.objects.exists()

    loyal = segment_member(program, email="loyal@example.com", first_name="Lou", segment="loyal")
    assert admin_client.get(preview_url(campaign)).context["member"] == loyal

    risky = segment_member(program, email="risky@example.com", first_name="Rita")
    assert admin_client.get(preview_url(campaign)).context["member"] == risky


def test_the_member_picker_searches_the_campaigns_programme(admin_client, program, campaign, maria):
    marco = segment_member(program, email="marco@example.com", first_name="Marco")
    elsewhere = segment_member(ProgramFactory(name="Other", slug="other"), email="olga@example.com", first_name="Olga")

    by_email = admin_client.get(preview_url(campaign), {"member": "marco@example.com"})
    assert by_email.context["member"] == marco

    several = admin_client.get(preview_url(campaign), {"member": "mar"})
    assert several.context["member"] == maria and several.context["matches"] == [marco]
    assert f'href="?member={marco.pk}"' in several.text

    for query in ("olga@example.com", str(elsewhere.pk)):
        other = admin_client.get(preview_url(campaign), {"member": query})
        assert other.context["member"] == maria  # the default, not another programme's member
        assert "No member of" in other.context["note"]


def test_the_preview_shows_the_sample_reward_code_and_issues_nothing(admin_client, program, maria):
    reward = Reward.objects.create(program=program, name="5 off", kind="fixed", value=Decimal("5.00"), points_cost=500)
    campaign = CampaignFactory(program=program, incentive=Campaign.Incentive.REWARD, incentive_reward=reward)

    response = admin_client.get(preview_url(campaign), {"member": maria.pk})

    assert "Your code PREVIEW-CODE: 5.00 EUR off" in response.context["rendered"].text
    assert "You have 120 points" in response.context["rendered"].text
    assert not Redemption.objects.exists()


def test_customer_data_is_escaped_on_the_preview_page(admin_client, program, campaign):
    member = segment_member(program, email="x@example.com", first_name="<script>alert(1)</script>")

    response = admin_client.get(preview_url(campaign), {"member": member.pk})

    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text  # subject and text version


@pytest.mark.parametrize(
    ("field", "source", "error"),
    [
        ("html_template", "<p>{% if %}</p>", "does not compile"),
        ("text_template", "{{ first_name|nosuchfilter }}", "does not compile"),
        ("subject", "{{ balance|divisibleby:0 }}", "failed while rendering: ZeroDivisionError"),
        ("subject", "{% url 'no-such-page' %}", "{% url %} is not allowed here"),
    ],
)
def test_a_broken_template_shows_the_error_not_a_500(admin_client, campaign, maria, field, source, error):
    Campaign.objects.filter(pk=campaign.pk).update(**{field: source})  # as an old row, past the form's check

    response = admin_client.get(preview_url(campaign))

    assert response.status_code == 200
    assert response.context["rendered"] is None
    assert error in response.context["error"]
    assert 'class="errornote"' in response.text and html.escape(error) in response.text


def test_render_with_a_message_tracks_and_without_one_does_not(program, campaign, maria, client):
    maria = Member.objects.select_related("program", "user").get(pk=maria.pk)
    message = Message.objects.create(
        campaign=campaign, program=program, member=maria, cycle="c1", created_at=maria.joined_at
    )

    tracked = campaign_render(campaign=campaign, member=maria, message=message)
    preview = campaign_render(campaign=campaign, member=maria)

    assert "/loyalty/m/" in tracked.html and 'href="http://localhost:8000/"' not in tracked.html
    assert "/loyalty/m/" not in preview.html and 'href="http://localhost:8000/"' in preview.html
    assert "/loyalty/unsubscribe/preview/" in preview.text
    # The placeholder unsubscribe link is an invalid link: it unsubscribes nobody.
    assert client.post("/loyalty/unsubscribe/preview/").status_code == 400
    assert Member.objects.get(pk=maria.pk).marketing_consent is True


# --- sending a test --------------------------------------------------------------------------------------


def test_a_test_email_goes_to_the_staff_address_and_changes_nothing(
    admin_client, admin_user, campaign, maria, mailoutbox
):
    before = nothing_written()

    response = admin_client.post(send_test_url(campaign), {"member": maria.pk}, follow=True)

    assert response.redirect_chain == [(f"{preview_url(campaign)}?member={maria.pk}", 302)]
    [email] = mailoutbox
    assert email.to == [admin_user.email]
    assert email.subject == "[TEST] Maria, we miss you at Demo Shop"
    assert "We have added 200 bonus points to your account" in email.body
    [(body, mimetype)] = email.alternatives
    assert mimetype == "text/html" and "Hello Maria," in body and "/m/" not in body
    assert f"Test email “[TEST] Maria, we miss you at Demo Shop” sent to {admin_user.email}." in texts(response)
    assert nothing_written() == before
    assert Member.objects.get(pk=maria.pk).balance == 120


def test_staff_without_an_email_address_get_an_error(admin_client, admin_user, campaign, maria, mailoutbox):
    admin_user.email = ""
    admin_user.save()

    page = admin_client.get(preview_url(campaign))
    response = admin_client.post(send_test_url(campaign), {"member": maria.pk}, follow=True)

    assert "has no email address" in page.text
    assert mailoutbox == []
    assert any("Your user account has no email address" in text for text in texts(response))


def test_a_test_of_a_broken_template_sends_nothing(admin_client, campaign, mailoutbox):
    Campaign.objects.filter(pk=campaign.pk).update(text_template="{% if %}")

    response = admin_client.post(send_test_url(campaign), follow=True)

    assert mailoutbox == []
    assert any("does not compile" in text for text in texts(response))


def test_a_test_is_sent_with_post_only(admin_client, campaign, mailoutbox):
    assert admin_client.get(send_test_url(campaign)).status_code == 405
    assert mailoutbox == []


# --- run now -------------------------------------------------------------------------------------------


def test_run_now_asks_first_with_the_eligible_count_then_queues(admin_client, program, campaign):
    segment_member(program, email="a@example.com")
    segment_member(program, email="b@example.com")
    segment_member(program, email="loyal@example.com", segment="loyal")

    confirm = admin_client.get(run_url(campaign))

    assert confirm.status_code == 200
    assert confirm.context["eligible"] == 2
    assert "<strong>2 members</strong> are eligible right now" in confirm.text
    assert "Yes, run it now" in confirm.text
    assert not Message.objects.exists()

    response = admin_client.post(run_url(campaign), follow=True)

    assert response.redirect_chain == [(reverse("admin:loyalty_campaign_change", args=[campaign.pk]), 302)]
    assert Message.objects.filter(campaign=campaign, status=Message.Status.QUEUED).count() == 2
    assert "“We miss you”: 2 emails queued, 0 member(s) held out as the control group." in texts(response)


def test_run_now_on_an_inactive_campaign_runs_nothing(admin_client, program):
    paused = CampaignFactory(program=program, name="Paused", is_active=False)
    segment_member(program, email="a@example.com")

    confirm = admin_client.get(run_url(paused))
    response = admin_client.post(run_url(paused), follow=True)

    assert confirm.context["eligible"] == 1 and "Yes, run it now" not in confirm.text
    assert "“Paused” is not active, or its programme is switched off: nothing was run." in texts(response)
    assert not Message.objects.exists()


def test_the_change_page_has_the_preview_and_run_buttons(admin_client, campaign):
    response = admin_client.get(reverse("admin:loyalty_campaign_change", args=[campaign.pk]))

    assert f'href="{preview_url(campaign)}"' in response.text
    assert f'href="{run_url(campaign)}"' in response.text


# --- permissions -----------------------------------------------------------------------------------------


def test_staff_without_view_campaign_get_403(client, campaign, mailoutbox):
    client.force_login(staff_user("view_member"))

    assert client.get(preview_url(campaign)).status_code == 403
    assert client.post(send_test_url(campaign)).status_code == 403
    assert client.get(run_url(campaign)).status_code == 403
    assert client.post(run_url(campaign)).status_code == 403
    assert mailoutbox == [] and not Message.objects.exists()


def test_view_only_staff_may_preview_and_test_but_not_run(client, program, campaign, maria, mailoutbox):
    client.force_login(staff_user("view_campaign", "view_member"))

    change_page = client.get(reverse("admin:loyalty_campaign_change", args=[campaign.pk]))
    assert f'href="{preview_url(campaign)}"' in change_page.text
    assert f'href="{run_url(campaign)}"' not in change_page.text
    assert client.get(preview_url(campaign), {"member": maria.pk}).context["member"] == maria
    assert client.post(send_test_url(campaign), {"member": maria.pk}).status_code == 302
    assert [m.to for m in mailoutbox] == [["staff@example.com"]]
    assert client.get(run_url(campaign)).status_code == 403
    assert client.post(run_url(campaign)).status_code == 403


def test_without_view_member_the_preview_uses_the_sample_member(client, campaign, maria):
    client.force_login(staff_user("view_campaign"))

    response = client.get(preview_url(campaign), {"member": maria.pk})

    assert response.status_code == 200
    assert response.context["member"].pk is None
    assert "Maria" not in response.text
    assert 'name="member" id="id_member"' not in response.text  # no picker


def test_anonymous_visitors_are_sent_to_the_login_page(client, campaign):
    response = client.get(preview_url(campaign))

    assert response.status_code == 302 and reverse("admin:login") in response.url
