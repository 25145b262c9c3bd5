"""Customers join on sign-up (when the programme says so) or with their first paid order."""

import pytest

from loyalty.models import Member
from loyalty.services import member_enroll
from tests.factories import ProgramFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_new_user_is_enrolled_after_commit_when_the_programme_enrols_on_signup(
    program, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        user = UserFactory()
    assert Member.objects.filter(user=user, program=program).exists()


def test_no_enrolment_on_signup_when_the_programme_waits_for_a_purchase(django_capture_on_commit_callbacks):
    ProgramFactory(enroll_on_signup=False)
    with django_capture_on_commit_callbacks(execute=True):
        user = UserFactory()
    assert not Member.objects.filter(user=user).exists()


def test_the_setting_switches_signup_enrolment_off(program, settings, django_capture_on_commit_callbacks):
    settings.LOYALTY = {**settings.LOYALTY, "ENROLL_ON_SIGNUP": False}
    with django_capture_on_commit_callbacks(execute=True):
        user = UserFactory()
    assert not Member.objects.filter(user=user).exists()


def test_enrolling_twice_returns_the_same_member(program, customer):
    first, created = member_enroll(program=program, user=customer)
    second, created_again = member_enroll(program=program, user=customer)
    assert (created, created_again) == (True, False)
    assert first.pk == second.pk
    assert Member.objects.count() == 1


def test_registering_through_the_shop_enrols_the_customer(client, program, django_capture_on_commit_callbacks):
    from django.urls import reverse

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("shop:register"),
            {"email": "new@example.com", "first_name": "Nina", "password": "a-Long-pass-42"},
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Member.objects.filter(user__email="new@example.com", program=program).exists()
