"""Staff groups in admin: what a loyalty manager and a support agent can and cannot do, the
support agents' adjustment limit, and a ledger nobody edits in admin (not even superusers)."""

import uuid
from importlib import import_module

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import RunPython
from django.forms import MultiWidget
from django.test import RequestFactory
from django.urls import reverse

from loyalty.admin.records import PointsEntryInline
from loyalty.models import Campaign, Member, PointsEntry, Reward
from loyalty.services import member_enroll, points_adjust, points_credit
from tests.factories import CampaignFactory, UserFactory

pytestmark = pytest.mark.django_db

staff_groups = import_module("loyalty.migrations.0005_staff_groups")
survey_permissions = import_module("loyalty.migrations.0008_survey_permissions")
outbox_permissions = import_module("loyalty.migrations.0010_outbox_permissions")
MANAGER, SUPPORT = staff_groups.MANAGER, staff_groups.SUPPORT


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def groups(db):
    # The migration made them; a transactional test elsewhere may have flushed the tables since,
    # so make sure (the same function, idempotent).
    staff_groups.create_groups(apps)
    survey_permissions.add_permissions(apps)
    return {group.name: group for group in Group.objects.filter(name__in=[MANAGER, SUPPORT])}


def in_group(groups, name: str):
    user = UserFactory(is_staff=True)
    user.groups.add(groups[name])
    return user


@pytest.fixture
def manager(groups):
    return in_group(groups, MANAGER)


@pytest.fixture
def agent(groups):
    return in_group(groups, SUPPORT)


@pytest.fixture
def rich_member(program, customer):
    member = member_enroll(program=program, user=customer)[0]
    points_credit(member=member, points=1000, kind=PointsEntry.Kind.BONUS, idempotency_key="seed")
    member.refresh_from_db()
    return member


@pytest.fixture
def reward(program):
    return Reward.objects.create(program=program, name="5 EUR off", kind=Reward.Kind.FIXED, value=5, points_cost=500)


def messages_of(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def url(model: str, view: str, *args) -> str:
    return reverse(f"admin:loyalty_{model}_{view}", args=args)


def form_data(response) -> dict:
    """What the change form would post back unchanged (its current values)."""
    form = response.context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        widget = form.fields[name].widget
        if value is None or value is False:
            continue
        if isinstance(widget, MultiWidget):  # the admin's date + time inputs
            data.update({f"{name}_{i}": str(part) for i, part in enumerate(widget.decompress(value))})
        elif value is True:
            data[name] = "on"
        elif isinstance(value, (list, tuple)):
            data[name] = [str(v) for v in value]
        else:
            data[name] = str(value)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update({f"{formset.management_form.prefix}-{k}": v for k, v in formset.management_form.initial.items()})
        for form in formset.forms:
            data.update({field.html_name: field.value() for field in form.hidden_fields() if field.value() is not None})
    return data


def adjust(client, member, points: int):
    return client.post(
        url("member", "adjust", member.pk), {"points": str(points), "reason": "Goodwill", "token": uuid.uuid4().hex}
    )


def adjust_action(client, member, points: int):
    return client.post(
        url("member", "changelist"),
        {
            "action": "adjust_points",
            "_selected_action": [member.pk],
            "apply": "1",
            "points": str(points),
            "reason": "Goodwill",
            "token": uuid.uuid4().hex,
        },
    )


def adjustments() -> int:
    return PointsEntry.objects.filter(kind=PointsEntry.Kind.ADJUST).count()


LIMIT_ERROR = "Support agents can adjust at most 500 points at a time; ask a loyalty manager."


# --- the migration ------------------------------------------------------------------------------


def codenames(group) -> set[str]:
    return set(group.permissions.values_list("codename", flat=True))


def test_the_manager_configures_the_programme_and_views_everything_else(groups):
    perms = codenames(groups[MANAGER])

    for model in ["program", "tier", "earningrule", "reward", "campaign", "healthsettings"]:
        assert {f"view_{model}", f"add_{model}", f"change_{model}", f"delete_{model}"} <= perms, model
    for model in staff_groups.LOYALTY_MODELS:
        assert f"view_{model}" in perms, model
    assert "change_member" in perms
    assert not {"add_pointsentry", "change_pointsentry", "delete_pointsentry", "delete_member", "add_member"} & perms
    assert all(p.content_type.app_label == "loyalty" for p in groups[MANAGER].permissions.all())


def test_the_support_agent_views_customers_and_may_adjust(groups):
    assert codenames(groups[SUPPORT]) == {
        "view_member",
        "view_pointsentry",
        "view_purchase",
        "view_redemption",
        "view_message",
        "change_member",
        # 0008: customers' survey answers, read-only.
        "view_survey",
        "view_surveyinvitation",
        "view_surveyresponse",
        # 0010: the emails sent to customers, read-only.
        "view_outboundemail",
    }


def test_surveys_managers_configure_and_everyone_reads_answers(groups):
    manager, support = codenames(groups[MANAGER]), codenames(groups[SUPPORT])

    assert {"view_survey", "add_survey", "change_survey", "view_surveyresponse", "view_surveyinvitation"} <= manager
    assert {"view_survey", "view_surveyresponse", "view_surveyinvitation"} <= support
    edits = {
        f"{action}_{model}"
        for action in ("add", "change", "delete")
        for model in ("surveyresponse", "surveyinvitation")
    }
    assert not edits & (manager | support)
    assert not {"add_survey", "change_survey", "delete_survey"} & support


def test_the_migration_creates_its_groups_once_and_reverses_cleanly(groups):
    before = {name: codenames(group) for name, group in groups.items()}

    staff_groups.create_groups(apps)  # again: nothing new
    survey_permissions.add_permissions(apps)
    outbox_permissions.add_permissions(apps)
    assert Group.objects.filter(name__in=[MANAGER, SUPPORT]).count() == 2
    assert {name: codenames(Group.objects.get(name=name)) for name in before} == before

    outbox_permissions.remove_permissions(apps)  # migrations reverse newest first
    survey_permissions.remove_permissions(apps)
    staff_groups.remove_groups(apps)
    assert not Group.objects.filter(name__in=[MANAGER, SUPPORT]).exists()
    assert Permission.objects.filter(codename="change_reward").exists()  # permissions themselves stay

    staff_groups.create_groups(apps)
    survey_permissions.add_permissions(apps)
    outbox_permissions.add_permissions(apps)
    assert {name: codenames(Group.objects.get(name=name)) for name in before} == before


def test_reversing_keeps_a_group_staff_gave_more_permissions(groups):
    extra = Permission.objects.get(codename="view_user")
    groups[SUPPORT].permissions.add(extra)

    outbox_permissions.remove_permissions(apps)
    survey_permissions.remove_permissions(apps)
    staff_groups.remove_groups(apps)

    assert codenames(Group.objects.get(name=SUPPORT)) == {"view_user"}
    assert not Group.objects.filter(name=MANAGER).exists()


def test_the_groups_migration_only_writes_data():
    migration = MigrationLoader(None, ignore_no_migrations=True).get_migration("loyalty", "0005_staff_groups")

    assert [type(op) for op in migration.operations] == [RunPython]
    assert migration.operations[0].reversible
    assert ("loyalty", "0004_health_and_campaigns") in migration.dependencies


# --- loyalty manager ---------------------------------------------------------------------------------


def test_manager_edits_a_reward(client, manager, reward):
    client.force_login(manager)
    page = client.get(url("reward", "change", reward.pk))
    assert page.status_code == 200

    response = client.post(url("reward", "change", reward.pk), {**form_data(page), "points_cost": "450"})

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else None
    assert Reward.objects.get(pk=reward.pk).points_cost == 450
    assert client.get(url("reward", "add")).status_code == 200


def test_manager_edits_a_campaign(client, manager, program):
    campaign = CampaignFactory(program=program, name="We miss you", is_active=False)
    client.force_login(manager)
    page = client.get(url("campaign", "change", campaign.pk))
    assert page.status_code == 200

    response = client.post(url("campaign", "change", campaign.pk), {**form_data(page), "cooldown_days": "45"})

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else None
    assert Campaign.objects.get(pk=campaign.pk).cooldown_days == 45


@pytest.mark.parametrize("model", staff_groups.LOYALTY_MODELS)
def test_manager_sees_every_loyalty_list(client, manager, model):
    client.force_login(manager)
    assert client.get(url(model, "changelist")).status_code == 200


def test_manager_cannot_write_ledger_entries_even_by_url(client, manager, rich_member):
    entry = PointsEntry.objects.get(member=rich_member)
    client.force_login(manager)

    change = client.get(url("pointsentry", "change", entry.pk))
    assert change.status_code == 200  # viewing is fine
    assert 'name="_save"' not in change.text
    assert client.post(url("pointsentry", "change", entry.pk), {"points": "99999"}).status_code == 403
    assert client.get(url("pointsentry", "add")).status_code == 403
    assert client.post(url("pointsentry", "add"), {"points": "5"}).status_code == 403
    assert client.get(url("pointsentry", "delete", entry.pk)).status_code == 403
    assert client.post(url("pointsentry", "delete", entry.pk), {"post": "yes"}).status_code == 403
    bulk = client.post(url("pointsentry", "changelist"), {"action": "delete_selected", "_selected_action": [entry.pk]})
    assert bulk.status_code in (200, 302)  # no delete action is offered

    entry.refresh_from_db()
    assert (entry.points, PointsEntry.objects.count()) == (1000, 1)


def test_manager_adjusts_points_without_a_limit(client, manager, rich_member):
    client.force_login(manager)

    response = adjust(client, rich_member, -600)

    assert response.status_code == 302
    assert Member.objects.get(pk=rich_member.pk).balance == 400


# --- support agent ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["member", "pointsentry", "purchase", "redemption", "message"])
def test_support_agent_views_customer_records(client, agent, rich_member, model):
    client.force_login(agent)
    assert client.get(url(model, "changelist")).status_code == 200


@pytest.mark.parametrize("model", ["program", "reward", "campaign", "tier", "earningrule", "orderevent"])
def test_support_agent_does_not_see_configuration(client, agent, model):
    client.force_login(agent)
    assert client.get(url(model, "changelist")).status_code == 403


def test_support_agent_views_a_member_and_adjusts_200_points(client, agent, rich_member):
    client.force_login(agent)
    page = client.get(url("member", "change", rich_member.pk))
    assert page.status_code == 200
    assert url("member", "adjust", rich_member.pk) in page.text

    response = adjust(client, rich_member, 200)

    assert response.status_code == 302
    entry = PointsEntry.objects.get(kind=PointsEntry.Kind.ADJUST)
    assert (entry.points, entry.created_by) == (200, agent)
    assert Member.objects.get(pk=rich_member.pk).balance == 1200


@pytest.mark.parametrize("points", [600, -600, 501])
def test_support_agent_cannot_adjust_more_than_the_limit(client, agent, rich_member, points):
    client.force_login(agent)

    response = adjust(client, rich_member, points)

    assert response.status_code == 200
    assert LIMIT_ERROR in response.text
    assert adjustments() == 0
    assert Member.objects.get(pk=rich_member.pk).balance == 1000


def test_the_limit_holds_on_the_bulk_action_too(client, agent, rich_member):
    client.force_login(agent)

    refused = adjust_action(client, rich_member, 600)
    allowed = adjust_action(client, rich_member, 500)

    assert refused.status_code == 200
    assert LIMIT_ERROR in refused.text
    assert allowed.status_code == 302
    assert list(PointsEntry.objects.filter(kind=PointsEntry.Kind.ADJUST).values_list("points", flat=True)) == [500]


def test_the_limit_is_a_setting(client, agent, rich_member, settings):
    client.force_login(agent)

    settings.LOYALTY = {**settings.LOYALTY, "SUPPORT_ADJUST_LIMIT": 50}
    refused = adjust(client, rich_member, 60)
    settings.LOYALTY = {**settings.LOYALTY, "SUPPORT_ADJUST_LIMIT": None, "SUPPORT_DAILY_ADJUST_LIMIT": None}
    unlimited = adjust(client, rich_member, 5000)

    assert "Support agents can adjust at most 50 points at a time; ask a loyalty manager." in refused.text
    assert unlimited.status_code == 302
    assert Member.objects.get(pk=rich_member.pk).balance == 6000


def test_a_superuser_has_no_limit(admin_client, rich_member):
    assert adjust(admin_client, rich_member, 5000).status_code == 302


def test_support_agent_cannot_edit_rewards(client, agent, reward):
    client.force_login(agent)

    assert client.get(url("reward", "change", reward.pk)).status_code == 403
    assert client.post(url("reward", "change", reward.pk), {"points_cost": "1"}).status_code == 403
    assert client.post(url("reward", "add"), {"name": "Free", "points_cost": "1"}).status_code == 403
    assert Reward.objects.get(pk=reward.pk).points_cost == 500
    assert Reward.objects.count() == 1


def test_support_agent_cannot_edit_the_member_itself(client, agent, rich_member):
    client.force_login(agent)

    page = client.get(url("member", "change", rich_member.pk))
    client.post(url("member", "change", rich_member.pk), {"birth_date": "1990-01-01", "marketing_consent": "on"})

    assert 'name="birth_date"' not in page.text  # shown read-only
    member = Member.objects.get(pk=rich_member.pk)
    assert (member.birth_date, member.marketing_consent) == (None, False)


def test_manager_edits_the_member_fields(client, manager, rich_member):
    client.force_login(manager)
    page = client.get(url("member", "change", rich_member.pk))

    response = client.post(url("member", "change", rich_member.pk), {**form_data(page), "birth_date": "1990-01-01"})

    assert response.status_code == 302
    assert str(Member.objects.get(pk=rich_member.pk).birth_date) == "1990-01-01"


# --- neither deletes members -------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["manager", "agent"])
def test_neither_group_can_delete_or_erase_members(client, request, who, rich_member):
    client.force_login(request.getfixturevalue(who))

    assert client.get(url("member", "delete", rich_member.pk)).status_code == 403
    assert client.post(url("member", "delete", rich_member.pk), {"post": "yes"}).status_code == 403
    assert client.post(url("member", "erase", rich_member.pk)).status_code == 403
    page = client.get(url("member", "change", rich_member.pk))
    assert url("member", "erase", rich_member.pk) not in page.text
    assert Member.objects.filter(pk=rich_member.pk).exists()
    assert Member.objects.get(pk=rich_member.pk).user.email == "maria@example.com"


# --- the ledger is read-only for everyone, superusers included -------------------------------------


def test_ledger_admin_and_inline_refuse_every_write_to_a_superuser(admin_user, rich_member):
    request = RequestFactory().get("/")
    request.user = admin_user
    entry = PointsEntry.objects.get(member=rich_member)
    ledger_admin = admin.site._registry[PointsEntry]
    inline = PointsEntryInline(Member, admin.site)

    assert not ledger_admin.has_add_permission(request)
    assert not ledger_admin.has_change_permission(request, entry)
    assert not ledger_admin.has_delete_permission(request, entry)
    assert ledger_admin.has_view_permission(request, entry)
    assert not inline.has_add_permission(request, rich_member)
    assert not inline.has_change_permission(request, rich_member)
    assert not inline.has_delete_permission(request, rich_member)
    assert "delete_selected" not in ledger_admin.get_actions(request)


def test_a_superuser_cannot_change_or_delete_a_ledger_row_by_url(admin_client, rich_member):
    points_adjust(member=rich_member, points=-100, reason="Correction")
    before = list(PointsEntry.objects.order_by("pk").values_list("pk", "points", "remaining", "description"))

    for entry_pk, *_ in before:
        assert admin_client.post(url("pointsentry", "change", entry_pk), {"points": "5"}).status_code == 403
        assert admin_client.post(url("pointsentry", "delete", entry_pk), {"post": "yes"}).status_code == 403
    assert admin_client.post(url("pointsentry", "add"), {"points": "5"}).status_code == 403

    after = list(PointsEntry.objects.order_by("pk").values_list("pk", "points", "remaining", "description"))
    assert after == before


def test_the_member_page_never_edits_ledger_rows(admin_client, rich_member):
    """Posting inline ledger forms with the member form changes no entry (the inline is read-only)."""
    entry = PointsEntry.objects.get(member=rich_member)
    page = admin_client.get(url("member", "change", rich_member.pk))
    data = {
        **form_data(page),
        "entries-TOTAL_FORMS": "2",
        "entries-INITIAL_FORMS": "1",
        "entries-0-id": str(entry.pk),
        "entries-0-points": "5",
        "entries-0-DELETE": "on",
        "entries-1-points": "77",
        "entries-1-kind": "bonus",
    }

    admin_client.post(url("member", "change", rich_member.pk), data)

    assert list(PointsEntry.objects.values_list("pk", "points")) == [(entry.pk, 1000)]
    assert Member.objects.get(pk=rich_member.pk).balance == 1000
