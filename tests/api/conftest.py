"""Fixtures of the API tests: two customers of one programme, a reward, staff with graded permissions."""

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from loyalty.models import PointsEntry, Reward
from loyalty.services import member_enroll, points_credit
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def fresh_throttles():
    cache.clear()  # throttle counters live in the cache
    yield
    cache.clear()


def client_for(user) -> APIClient:
    """A client authenticated with the user's API token (``Authorization: Token ...``)."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def fund(member, points: int, key: str = "fund"):
    return points_credit(member=member, points=points, kind=PointsEntry.Kind.EARN, idempotency_key=f"{key}:{member.pk}")


@pytest.fixture
def other(program):
    user = UserFactory(email="luca@example.com", first_name="Luca")
    return member_enroll(program=program, user=user)[0]


@pytest.fixture
def reward(program):
    return Reward.objects.create(program=program, name="5 EUR off", kind="fixed", value=5, points_cost=500)


@pytest.fixture
def api(member):
    return client_for(member.user)


@pytest.fixture
def other_api(other):
    return client_for(other.user)


def staff_user(email: str, *perms: str):
    user = UserFactory(email=email, is_staff=True)
    codenames = [perm.split(".")[1] for perm in perms]
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="loyalty", codename__in=codenames))
    return user


@pytest.fixture
def viewer(db):
    """Staff who may look members up but not change them."""
    return staff_user("viewer@example.com", "loyalty.view_member", "loyalty.view_program", "loyalty.view_campaign")


@pytest.fixture
def agent(db):
    """A support agent: may adjust, within LOYALTY["SUPPORT_ADJUST_LIMIT"]."""
    return staff_user("agent@example.com", "loyalty.view_member", "loyalty.change_member")


@pytest.fixture
def manager(db):
    """A loyalty manager (may change programmes): adjusts without a limit."""
    return staff_user("manager@example.com", "loyalty.view_member", "loyalty.change_member", "loyalty.change_program")
