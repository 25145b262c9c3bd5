"""No customer ever sees or changes another's data: a matrix generated from the URLconf.

Every URL pattern of the customer-facing apps (the shop, loyalty's pages, the loyalty API) is
requested by each kind of user (anonymous, a customer, three grades of staff), with GET and
POST, its path parameters filled with the OTHER member's ids. A new URL is in the matrix
without anyone adding it: a new path parameter only needs a line in ``OTHER_IDS`` (the test
says so), and a new signed-link route must be added to ``test_signed_links.py`` (ditto).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from loyalty.api.staff_views import StaffMixin
from loyalty.models import Campaign, Member, PointsEntry, Program, Redemption, Reward
from loyalty.services import member_enroll, points_credit, reward_redeem
from tests.factories import ProductFactory, UserFactory, paid_order

pytestmark = pytest.mark.django_db

#: The apps whose URLs customers reach (admin is staff-only and guarded by Django's admin).
NAMESPACES = ("shop", "loyalty", "loyalty_api")
#: Routes whose parameter is a signed token: the token is the credential (tests/security/test_signed_links.py).
TOKEN_ROUTES = {
    "loyalty:guest_claim",
    "loyalty:unsubscribe",
    "loyalty:track_open",
    "loyalty:track_click",
    "loyalty:survey",
}


@dataclass(frozen=True)
class Route:
    name: str  # "namespace:name"
    pattern: URLPattern
    params: tuple[str, ...]

    @property
    def view_class(self):
        return getattr(self.pattern.callback, "view_class", None)

    @property
    def is_staff_api(self) -> bool:
        return self.view_class is not None and issubclass(self.view_class, StaffMixin)


def _walk(patterns, namespace: str = "") -> list[Route]:
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += _walk(pattern.url_patterns, pattern.namespace or namespace)
        elif isinstance(pattern, URLPattern) and namespace in NAMESPACES:
            params = tuple(getattr(pattern.pattern, "converters", {})) or tuple(pattern.pattern.regex.groupindex)
            found.append(Route(f"{namespace}:{pattern.name}", pattern, params))
    return found


ROUTES = _walk(get_resolver().url_patterns)

#: How to fill each path parameter with the other member's (Luca's) ids; ``w`` is the World.
OTHER_IDS = {
    ("loyalty:referral", "code"): lambda w: w.luca.referral_code,
    ("loyalty:redeem", "reward_id"): lambda w: w.luca_only_reward.pk,
    ("loyalty:how_it_works", "program_slug"): lambda w: w.luca_program.slug,
    ("loyalty_api:redemption", "pk"): lambda w: w.luca_redemption.pk,
    ("loyalty_api:staff-member", "pk"): lambda w: w.luca.pk,
    ("loyalty_api:staff-member-adjust", "pk"): lambda w: w.luca.pk,
    ("loyalty_api:staff-campaign-report", "pk"): lambda w: w.campaign.pk,
    ("shop:product_detail", "slug"): lambda w: w.product.slug,
    ("shop:order_pay", "number"): lambda w: w.luca_order.number,
    ("shop:order_detail", "number"): lambda w: w.luca_order.number,
}


def test_the_matrix_covers_every_route():
    names = {route.name for route in ROUTES}
    assert {"loyalty:redeem", "loyalty_api:redemption", "loyalty_api:staff-member-adjust", "shop:order_detail"} <= names
    token_routes = {route.name for route in ROUTES if "token" in route.params}
    assert token_routes == TOKEN_ROUTES, "a signed-link route is new or gone: cover it in test_signed_links.py"
    missing = [
        (route.name, param)
        for route in ROUTES
        if route.name not in TOKEN_ROUTES
        for param in route.params
        if (route.name, param) not in OTHER_IDS
    ]
    assert not missing, f"new path parameters: say in OTHER_IDS how to fill them with another member's ids: {missing}"


class World:
    """Maria (the customer under test) and Luca (the other member) with his data, in two programmes."""

    def __init__(self) -> None:
        self.program = Program.objects.create(name="Rewards", slug="rewards", currency="EUR")
        self.luca_program = Program.objects.create(name="Club", slug="club", currency="EUR")
        self.maria_user = UserFactory(email="maria@example.com", first_name="Maria")
        self.luca_user = UserFactory(email="luca.private@example.com", first_name="Lucrezio", last_name="Segreto")
        self.maria = member_enroll(program=self.program, user=self.maria_user)[0]
        self.luca = member_enroll(program=self.luca_program, user=self.luca_user)[0]
        member_enroll(program=self.program, user=self.luca_user)
        points_credit(member=self.luca, points=5000, kind=PointsEntry.Kind.EARN, idempotency_key="luca-fund")
        self.luca_only_reward = Reward.objects.create(
            program=self.luca_program, name="Club gift", kind="fixed", value=5, points_cost=1000
        )
        self.luca_redemption = reward_redeem(member=self.luca, reward=self.luca_only_reward, idempotency_key="luca-r")
        self.luca_order = paid_order(total="12.00", user=self.luca_user)
        self.product = ProductFactory()
        self.campaign = Campaign.objects.create(program=self.luca_program, name="Win-back")
        self.luca.refresh_from_db()

    def secrets(self) -> list[str]:
        """What must never show to anyone but Luca (and staff on staff endpoints)."""
        return [
            self.luca_user.email,
            self.luca_user.first_name,
            self.luca_user.last_name,
            self.luca_redemption.code,
        ]

    def state(self) -> tuple:
        """Luca's data a request could change."""
        luca = Member.objects.get(pk=self.luca.pk)
        return (
            luca.balance,
            luca.marketing_consent,
            PointsEntry.objects.filter(member__user=self.luca_user).count(),
            Redemption.objects.get(pk=self.luca_redemption.pk).status,
            type(self.luca_order).objects.get(pk=self.luca_order.pk).status,
        )

    def users(self) -> dict[str, object]:
        def staff(email: str, *codenames: str):
            user = UserFactory(email=email, is_staff=True)
            user.user_permissions.add(
                *Permission.objects.filter(content_type__app_label="loyalty", codename__in=codenames)
            )
            return user

        return {
            "anonymous": None,
            "customer": self.maria_user,
            "viewer": staff("viewer@example.com", "view_member", "view_program", "view_campaign"),
            "agent": staff("agent@example.com", "view_member", "change_member"),
            "manager": staff(
                "manager@example.com", "view_member", "change_member", "change_program", "view_program", "view_campaign"
            ),
        }


def url_for(route: Route, world: World) -> str:
    kwargs = {param: OTHER_IDS[(route.name, param)](world) for param in route.params}
    from django.urls import reverse

    return reverse(route.name, kwargs=kwargs)


@pytest.mark.parametrize("route", [r for r in ROUTES if r.name not in TOKEN_ROUTES], ids=lambda r: r.name)
def test_nobody_reaches_another_members_data(route):
    if any((route.name, param) not in OTHER_IDS for param in route.params):
        pytest.fail(f"{route.name}: add its parameters to OTHER_IDS")  # test_the_matrix_covers_every_route says which
    world = World()
    url = url_for(route, world)
    before = world.state()
    for kind, user in world.users().items():
        client = Client()
        if user is not None:
            client.force_login(user)
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            body = response.content.decode(errors="replace")
            where = f"{method.upper()} {url} as {kind}"
            assert response.status_code < 500, where
            staff_may_see = route.is_staff_api and kind in ("viewer", "agent", "manager")
            if route.is_staff_api and not staff_may_see:
                assert response.status_code in (401, 403), where  # customers and anonymous never reach staff data
            if not staff_may_see:
                leaked = [secret for secret in world.secrets() if secret and secret in body]
                assert not leaked, f"{where} shows the other member's {leaked}"
    assert world.state() == before, f"{url}: the other member's data changed"
