"""The holes found when the project was probed from outside (issue #14), one reproduction each.

Each test here did what the attacker did and failed before the fix; the generated matrices of
this package (IDOR, signed links, redirects, template sandbox) keep the wider ground covered.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.checks import run_checks
from django.db import close_old_connections
from django.urls import reverse

from loyalty import exceptions as errors  # module access: this file also runs against the code before the fix
from loyalty.models import Campaign, Member, PointsEntry, Redemption, Referral, Reward
from loyalty.receivers import connect_referrals
from loyalty.services import member_enroll, points_adjust, points_credit
from loyalty.services.notifications import member_email_render
from tests.api.conftest import client_for
from tests.factories import UserFactory, paid_order

ROOT = Path(__file__).resolve().parents[2]
API = "/api/loyalty/"
PUBLIC_DEMO_KEY = "demo-only-insecure-key-change-me-in-production-0123456789"


def staff(email: str, *codenames: str):
    user = UserFactory(email=email, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="loyalty", codename__in=codenames))
    return user


def agent_with_membership(program, email="agent@example.com"):
    agent = staff(email, "view_member", "change_member")
    return agent, member_enroll(program=program, user=agent)[0]


def project_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with the project's settings and exactly ``env`` set."""
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}}
    clean.update({"DJANGO_SETTINGS_MODULE": "config.settings", **env})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


# --- 1. a public default SECRET_KEY, DEBUG on by default -------------------------------------------


def test_without_debug_and_without_a_secret_key_the_project_refuses_to_start():
    result = project_python("import django; django.setup()")

    assert result.returncode != 0
    assert "SECRET_KEY is not set and DEBUG is off" in result.stderr


def test_debug_is_off_unless_the_environment_turns_it_on():
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    assert project_python(code, SECRET_KEY="k" * 10 + "0123456789" * 5).stdout.strip() == "False"
    assert project_python(code, DEBUG="1").stdout.strip() == "True"


def test_a_development_run_gets_a_random_key_of_its_own_not_a_published_one():
    code = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"
    first, second = (project_python(code, DEBUG="1").stdout.strip() for _ in range(2))
    assert first == second  # one key per checkout: the demo's web server and worker sign alike
    assert len(first) >= 50 and first != PUBLIC_DEMO_KEY


@pytest.mark.parametrize(
    ("key", "check"),
    [(PUBLIC_DEMO_KEY, "loyalty.E007"), ("short-key", "loyalty.E008"), ("a" * 60, "loyalty.E008")],
)
def test_the_published_key_and_weak_keys_are_system_check_errors(settings, key, check):
    settings.SECRET_KEY = key
    assert check in [message.id for message in run_checks()]


def test_a_long_random_key_passes(settings):
    assert not [m for m in run_checks() if m.id in ("loyalty.E007", "loyalty.E008")]


def documented_production_env() -> dict[str, str]:
    """The variables docs/install.md lists for production (its ``production.env`` block)."""
    text = (ROOT / "docs" / "install.md").read_text()
    block = re.search(r"```sh\n# production\.env\n(.*?)```", text, re.S)
    assert block, "docs/install.md lost its production.env block"
    pairs = (line.split("=", 1) for line in block.group(1).splitlines() if "=" in line and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def test_check_deploy_is_clean_on_the_documented_production_environment():
    env = documented_production_env()
    assert env["DEBUG"] == "False" and "SECRET_KEY" in env and "REDIS_URL" in env
    env["SECRET_KEY"] = "p" * 8 + os.urandom(30).hex()  # the docs show a placeholder
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE"}} | env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


# --- 2. a support agent credits their own membership ---------------------------------------------


def test_a_support_agent_cannot_credit_their_own_membership_through_the_api(program):
    agent, own = agent_with_membership(program)
    points_credit(member=own, points=50, kind=PointsEntry.Kind.EARN, idempotency_key="start")

    responses = [
        client_for(agent).post(f"{API}staff/members/{own.pk}/adjust/", {"points": 500, "reason": "x"}, format="json")
        for _ in range(3)
    ]

    assert [r.status_code for r in responses] == [403, 403, 403]
    assert responses[0].json()["code"] == "own_membership"
    assert Member.objects.get(pk=own.pk).balance == 50


def test_a_support_agent_cannot_credit_their_own_membership_in_admin(client, program):
    agent, own = agent_with_membership(program)
    client.force_login(agent)

    response = client.post(
        reverse("admin:loyalty_member_adjust", args=[own.pk]), {"points": 500, "reason": "x", "token": "t1"}
    )

    assert response.status_code == 200
    assert "You cannot change your own loyalty membership" in response.text
    assert not PointsEntry.objects.filter(member=own).exists()


def test_the_service_holds_every_caller_to_the_staff_policy(program, member):
    agent, own = agent_with_membership(program)
    manager = UserFactory(email="boss@example.com", is_staff=True, is_superuser=True)
    boss_membership = member_enroll(program=program, user=manager)[0]

    with pytest.raises(errors.OwnMembership):
        points_adjust(member=own, points=10, reason="shell", by=agent)
    with pytest.raises(errors.OwnMembership):  # managers too
        points_adjust(member=boss_membership, points=10, reason="shell", by=manager)
    with pytest.raises(errors.AdjustLimitExceeded) as refused:
        points_adjust(member=member, points=501, reason="shell", by=agent)
    assert refused.value.code == "adjust_limit_exceeded"
    assert points_adjust(member=member, points=5000, reason="migration", by=manager).points == 5000
    assert points_adjust(member=member, points=5000, reason="system").points == 5000  # no staff user: no policy


def test_a_support_agent_has_a_daily_total(program, member, settings):
    settings.LOYALTY = {**settings.LOYALTY, "SUPPORT_DAILY_ADJUST_LIMIT": 1000}
    agent, _ = agent_with_membership(program)

    points_adjust(member=member, points=500, reason="goodwill", by=agent, idempotency_key="a")
    points_adjust(member=member, points=-400, reason="correction", by=agent, idempotency_key="b")
    with pytest.raises(errors.DailyAdjustLimitExceeded) as refused:
        points_adjust(member=member, points=200, reason="more", by=agent, idempotency_key="c")
    replay = points_adjust(member=member, points=500, reason="goodwill", by=agent, idempotency_key="a")

    assert refused.value.code == "daily_adjust_limit_exceeded"
    assert "you have adjusted 900 today" in refused.value.message
    assert replay.replayed  # the same key again is the first adjustment, not a new one
    assert Member.objects.get(pk=member.pk).balance == 100


def test_the_api_shows_the_daily_limit_refusal_with_its_code(program, member, settings):
    settings.LOYALTY = {**settings.LOYALTY, "SUPPORT_DAILY_ADJUST_LIMIT": 600}
    agent, _ = agent_with_membership(program)
    api = client_for(agent)
    url = f"{API}staff/members/{member.pk}/adjust/"

    assert api.post(url, {"points": 500, "reason": "x"}, format="json").status_code == 201
    refused = api.post(url, {"points": 200, "reason": "x"}, format="json")

    assert refused.status_code == 403
    assert refused.json()["code"] == "daily_adjust_limit_exceeded"


def test_a_support_agent_cannot_issue_a_free_reward_to_themselves(client, program):
    agent, own = agent_with_membership(program)
    reward = Reward.objects.create(program=program, name="Tote bag", kind="fixed", value=5, points_cost=100)
    client.force_login(agent)

    response = client.post(
        reverse("admin:loyalty_member_issue_reward", args=[own.pk]), {"reward": reward.pk, "token": "t1"}
    )

    assert "You cannot change your own loyalty membership" in response.text
    assert not Redemption.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_adjustments_by_one_agent_never_pass_the_daily_total(postgres_only, program, member, settings):
    settings.LOYALTY = {**settings.LOYALTY, "SUPPORT_DAILY_ADJUST_LIMIT": 700}
    agent, _ = agent_with_membership(program)
    barrier, outcomes = threading.Barrier(4), []

    def adjust(n: int) -> None:
        barrier.wait()
        try:
            points_adjust(member=member, points=300, reason="x", by=agent, idempotency_key=f"k{n}")
            outcomes.append("ok")
        except errors.DailyAdjustLimitExceeded:
            outcomes.append("refused")
        finally:
            close_old_connections()

    threads = [threading.Thread(target=adjust, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["ok", "ok", "refused", "refused"]
    assert Member.objects.get(pk=member.pk).balance == 600


# --- 3. self-referral through address variants -------------------------------------------------


@pytest.fixture
def referral_rules(program):
    from loyalty.models import EarningRule

    connect_referrals()
    EarningRule.objects.create(program=program, kind=EarningRule.Kind.REFERRER, name="Thanks", points=500)
    EarningRule.objects.create(program=program, kind=EarningRule.Kind.REFEREE, name="Welcome", points=200)


@pytest.mark.parametrize(
    ("owner", "variant"),
    [
        ("anna@example.com", "anna+ref@example.com"),
        ("anna@example.com", "Anna+Ref@EXAMPLE.com"),
        ("anna.rossi@gmail.com", "a.n.n.a.r.o.s.s.i@gmail.com"),
        ("annarossi@gmail.com", "anna.rossi+x@googlemail.com"),
    ],
)
def test_registering_an_address_variant_through_ones_own_link_pays_no_bonus(
    client, program, referral_rules, owner, variant, django_capture_on_commit_callbacks
):
    anna = member_enroll(program=program, user=UserFactory(email=owner))[0]
    client.get(reverse("loyalty:referral", args=[anna.referral_code]))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("shop:register"), {"email": variant, "first_name": "Anna", "password": "a-long-Secret-42"},
            follow=True,
        )
    friend = Member.objects.get(user__email__iexact=variant)
    with django_capture_on_commit_callbacks(execute=True):
        paid_order(total="30.00", user=friend.user)

    referral = Referral.objects.get(friend=friend)
    assert referral.status == Referral.Status.REFUSED
    assert "Self-referral" in referral.note
    assert Member.objects.get(pk=anna.pk).balance == 0
    assert Member.objects.get(pk=friend.pk).balance == 30
    assert "your own link earns no referral bonus" in response.text  # the friend is told why


def test_a_different_person_at_the_same_domain_is_still_a_friend(client, program, referral_rules):
    anna = member_enroll(program=program, user=UserFactory(email="anna.rossi@example.com"))[0]
    client.get(reverse("loyalty:referral", args=[anna.referral_code]))
    client.post(reverse("shop:register"), {"email": "annarossi@example.com", "password": "a-long-Secret-42"})

    # Dots matter outside the providers that ignore them.
    assert Referral.objects.get(friend__user__email="annarossi@example.com").status == Referral.Status.PENDING


# --- 4. the redeem page trusted Referer -------------------------------------------------------


def test_the_redeem_page_never_sends_the_customer_to_the_referer_host(client, member, customer):
    reward = Reward.objects.create(program=member.program, name="5 off", kind="fixed", value=5, points_cost=500)
    client.force_login(customer)
    url = reverse("loyalty:redeem", args=[reward.pk])

    page = client.get(url, HTTP_REFERER="https://evil.example/phish")
    bad_token = client.post(url, {"token": "not-a-uuid"}, HTTP_REFERER="https://evil.example/phish")
    local = client.post(url, {"token": "not-a-uuid"}, HTTP_REFERER="http://testserver/account/")

    assert "evil.example" not in page.text
    assert (bad_token.status_code, bad_token["Location"]) == (302, "/")
    assert local["Location"] == "http://testserver/account/"


# --- 5. staff templates ran in the full template engine --------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{% load loyalty_tags %}{% loyalty_account_panel %}",
        "{% debug %}",
        "{% include 'loyalty/emails/base.txt' %}",
        "{% extends 'base.html' %}",
    ],
)
def test_a_manager_cannot_save_a_campaign_template_that_leaves_the_sandbox(admin_client, program, source):
    from tests.factories import CampaignFactory

    campaign = CampaignFactory(program=program)
    url = reverse("admin:loyalty_campaign_change", args=[campaign.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and not isinstance(value, list)}
    data.update(
        {
            "program": program.pk,
            "segments": ["at_risk"],
            "text_template": source,
            "send_time": "10:00",
        }
    )
    response = admin_client.post(url, data)

    assert response.status_code == 200  # the form again, with the error
    assert "is not allowed here" in response.text
    assert Campaign.objects.get(pk=campaign.pk).text_template != source


def test_an_old_campaign_with_a_load_tag_is_not_sent(program, mailoutbox):
    from django.utils import timezone

    from loyalty.models import Message
    from loyalty.services.campaigns import campaign_run, message_send
    from tests.factories import CampaignFactory, segment_member

    campaign = CampaignFactory(program=program, text_template="{% load loyalty_tags %}{% debug %}")  # no clean()
    segment_member(program, email="ann@example.com")
    now = timezone.now()
    campaign_run(campaign=campaign, now=now)
    [message] = Message.objects.filter(campaign=campaign)

    assert message_send(message_id=message.pk, now=now) == "failed"
    message.refresh_from_db()
    assert "is not allowed here" in message.last_error
    assert mailoutbox == []
    assert not PointsEntry.objects.exists()  # and no bonus points


# --- 6. the redeem throttle counted per process -----------------------------------------------


def test_with_redis_url_the_cache_is_redis_shared_by_every_process():
    code = "import django; django.setup(); from django.conf import settings as s; print(s.CACHES['default']['BACKEND'])"
    with_redis = project_python(code, DEBUG="1", REDIS_URL="redis://127.0.0.1:6379/9")
    without = project_python(code, DEBUG="1", REDIS_URL="")

    assert with_redis.stdout.strip() == "django.core.cache.backends.redis.RedisCache"
    assert without.stdout.strip() == "django.core.cache.backends.locmem.LocMemCache"


def test_throttling_on_a_per_process_cache_without_debug_is_a_check_warning(settings):
    settings.DEBUG = False
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert "loyalty.W008" in [m.id for m in run_checks()]

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x"}}
    assert "loyalty.W008" not in [m.id for m in run_checks()]

    settings.DEBUG = True
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert "loyalty.W008" not in [m.id for m in run_checks()]


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (REDIS_URL)")
def test_two_processes_share_one_throttle_count_on_redis(db):
    """Two web processes (two cache connections) count the same user's redemptions together."""
    from django.core.cache.backends.redis import RedisCache
    from rest_framework.throttling import SimpleRateThrottle

    prefix = f"throttle-test-{os.getpid()}-{os.urandom(4).hex()}"
    caches = [RedisCache(os.environ["REDIS_URL"], {"KEY_PREFIX": prefix}) for _ in range(2)]

    class Throttle(SimpleRateThrottle):
        rate = "3/min"

        def get_cache_key(self, request, view):
            return "user-1"

    allowed = 0
    for n in range(6):
        throttle = Throttle()
        throttle.cache = caches[n % 2]  # requests land on alternating processes
        allowed += throttle.allow_request(None, None)
    caches[0].delete("user-1")
    assert allowed == 3


# --- 7. API details ----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_replays_of_one_key_get_one_201_and_200s_with_the_same_body(postgres_only, member, customer):
    reward = Reward.objects.create(program=member.program, name="5 off", kind="fixed", value=5, points_cost=100)
    points_credit(member=member, points=1000, kind=PointsEntry.Kind.EARN, idempotency_key="fund")
    barrier, results = threading.Barrier(5), []

    def post() -> None:
        api = client_for(customer)
        barrier.wait()
        try:
            response = api.post(f"{API}redemptions/", {"reward": reward.pk, "idempotency_key": "same"}, format="json")
            results.append((response.status_code, response.json()))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=post) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(status for status, _ in results) == [200, 200, 200, 200, 201]
    assert len({body["id"] for _, body in results}) == 1
    assert Redemption.objects.count() == 1
    assert Member.objects.get(pk=member.pk).balance == 900


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "redemptions/-1/", 404, "not_found"),
        ("get", "no-such-endpoint/", 404, "not_found"),
        ("post", "staff/members/abc/adjust/", 404, "not_found"),
        ("get", "me", 404, "not_found"),
        ("delete", "me/", 405, "method_not_allowed"),
        ("put", "redemptions/", 405, "method_not_allowed"),
    ],
)
def test_every_api_error_is_json_with_a_code(api_client_for_member, method, path, status, code):
    response = getattr(api_client_for_member, method)(API + path)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == code


def test_an_unknown_api_url_is_json_for_anonymous_callers_too(client):
    response = client.get(API + "redemptions/-1/")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


@pytest.fixture
def api_client_for_member(member):
    return client_for(member.user)


# --- 8. subjects showed HTML entities -----------------------------------------------------------


def test_email_subjects_are_plain_text_without_entities_or_newlines(member, settings):
    settings.LOYALTY = {**settings.LOYALTY, "SHOP_NAME": "A & B"}
    member.program.name = "Rossi & Figli <Club>"

    rendered = member_email_render(
        member=member, template="reward_issued", context={"reward": "5 € \"off\" &\nmore", "code": "X"}
    )

    assert rendered.subject == 'Your reward: 5 € "off" & more'
    assert "&amp;" not in rendered.subject and "\n" not in rendered.subject
