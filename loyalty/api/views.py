"""API views: thin. Reads through selectors/kpis, writes through services; errors via .exceptions."""

from __future__ import annotations

from django.db.models import Count, Q
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from ..exceptions import LoyaltyError
from ..models import Member, PointsEntry, Redemption, Referral, Reward
from . import serializers as s
from .pagination import NewestFirstCursorPagination
from .throttling import RedeemThrottle

ERRORS = {
    400: OpenApiResponse(s.ErrorSerializer, description="Invalid input (`code`: `invalid`, see `fields`)."),
    401: OpenApiResponse(s.ErrorSerializer, description="Not signed in (`not_authenticated`)."),
    403: OpenApiResponse(s.ErrorSerializer, description="Not allowed (`permission_denied`)."),
    404: OpenApiResponse(s.ErrorSerializer, description="Not found, or not yours (`not_found`)."),
    409: OpenApiResponse(s.ErrorSerializer, description="Refused by the loyalty engine (its error `code`)."),
    429: OpenApiResponse(s.ErrorSerializer, description="Too many requests (`throttled`, `wait` seconds)."),
}


#: Path ids are positive integers (the URL pattern ``<int:pk>`` matches no sign) that fit a BigAutoField.
ID_PARAM = OpenApiParameter("id", {"type": "integer", "minimum": 1, "maximum": s.MAX_ID}, OpenApiParameter.PATH)


class PathIdMixin:
    """A path id beyond any BigAutoField is simply not found (Django < 5.0 on SQLite would raise on it)."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if kwargs.get("pk", 0) > s.MAX_ID:
            raise NotFound()


def errors(*codes: int) -> dict:
    return {code: ERRORS[code] for code in (401, 403, *codes)}


def own_members(user):
    """The signed-in customer's memberships of active programmes: the only data they ever see."""
    return selectors.memberships_for_user(user)


def own_redemptions(user):
    """The signed-in customer's redemptions, with their rewards."""
    return Redemption.objects.filter(member__in=own_members(user)).select_related("reward")


# --- customers ------------------------------------------------------------------------------


class CustomerView(APIView):
    permission_classes = [IsAuthenticated]


@extend_schema(tags=["customer"], responses={200: s.MembershipSerializer(many=True), **errors()})
class MeView(CustomerView):
    """The customer's programme memberships: balance, its money value, tier, progress, pending, expiring."""

    def get(self, request):
        rows = [
            {
                "member": member,
                "progress": selectors.tier_progress(member),
                "expiring": selectors.expiring_points(member),
            }
            for member in own_members(request.user)
        ]
        return Response(s.MembershipSerializer(rows, many=True).data)


PROGRAM_PARAM = OpenApiParameter("program", int, description="Only this programme (id).", required=False)


def _program_filter(request) -> int | None:
    value = request.query_params.get("program")
    if value in (None, ""):
        return None
    field = s.serializers.IntegerField(min_value=1, max_value=s.MAX_ID)
    return field.run_validation(value)


@extend_schema(tags=["customer"], parameters=[PROGRAM_PARAM], responses={200: s.LedgerEntrySerializer, **errors(400)})
class TransactionListView(generics.ListAPIView):
    """The customer's points ledger, newest first (cursor-paginated)."""

    permission_classes = [IsAuthenticated]
    serializer_class = s.LedgerEntrySerializer
    pagination_class = NewestFirstCursorPagination

    def get_queryset(self):
        rows = PointsEntry.objects.filter(member__in=own_members(self.request.user))
        if (program := _program_filter(self.request)) is not None:
            rows = rows.filter(program_id=program)
        return rows


@extend_schema(
    tags=["customer"], parameters=[PROGRAM_PARAM], responses={200: s.RewardOptionSerializer(many=True), **errors(400)}
)
class RewardListView(CustomerView):
    """The rewards of the customer's programmes on offer now, with what stands between them and each."""

    def get(self, request):
        program = _program_filter(request)
        options = [
            option
            for member in own_members(request.user)
            if program is None or member.program_id == program
            for option in selectors.reward_options(member)
        ]
        return Response(s.RewardOptionSerializer(options, many=True).data)


class RedemptionListView(generics.ListCreateAPIView):
    """The customer's redemptions (newest first) and, by POST, a new one."""

    permission_classes = [IsAuthenticated]
    serializer_class = s.RedemptionSerializer
    pagination_class = NewestFirstCursorPagination
    throttle_classes = [RedeemThrottle]

    def get_queryset(self):
        return own_redemptions(self.request.user)

    @extend_schema(tags=["customer"], responses={200: s.RedemptionSerializer, **errors()})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=["customer"],
        request=s.RedeemRequestSerializer,
        responses={
            201: s.RedemptionSerializer,
            200: OpenApiResponse(s.RedemptionSerializer, description="The same idempotency key again."),
            **errors(400, 409, 429),
        },
    )
    def post(self, request, *args, **kwargs):
        data = s.RedeemRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        reward = (
            Reward.objects.filter(pk=data.validated_data["reward"], program__members__in=own_members(request.user))
            .select_related("program")
            .first()
        )
        if reward is None:
            raise s.serializers.ValidationError(
                {"reward": ["No such reward in your programmes."]}, code="does_not_exist"
            )
        member = own_members(request.user).get(program_id=reward.program_id)
        # Scoped per member: one customer's keys can neither collide with nor reveal another's.
        key = f"api:{member.pk}:{data.validated_data['idempotency_key']}"
        # Replay or not is decided by the service under the member's lock: of concurrent requests
        # with one key, one gets 201 and the others 200 with the same body.
        redemption = services.reward_redeem(member=member, reward=reward, idempotency_key=key)
        replay = getattr(redemption, "replayed", False)
        return Response(
            s.RedemptionSerializer(redemption).data, status=status.HTTP_200_OK if replay else status.HTTP_201_CREATED
        )


@extend_schema(tags=["customer"], parameters=[ID_PARAM], responses={200: s.RedemptionSerializer, **errors(404)})
class RedemptionDetailView(PathIdMixin, generics.RetrieveAPIView):
    """One of the customer's redemptions (another customer's id: 404)."""

    permission_classes = [IsAuthenticated]
    serializer_class = s.RedemptionSerializer

    def get_queryset(self):
        return own_redemptions(self.request.user)


@extend_schema(tags=["customer"], responses={200: s.ReferralSerializer(many=True), **errors()})
class ReferralView(CustomerView):
    """The customer's referral code and link per programme, and how many friends joined and were rewarded."""

    def get(self, request):
        members = list(own_members(request.user))
        counts = {
            row["referrer_id"]: row
            for row in Referral.objects.filter(referrer__in=members)
            .order_by()
            .values("referrer_id")
            .annotate(
                invited=Count("pk"),
                rewarded=Count("pk", filter=Q(status=Referral.Status.REWARDED)),
                pending=Count("pk", filter=Q(status=Referral.Status.PENDING)),
            )
        }
        rows = []
        for member in members:
            code = services.referral_code_for(member)
            found = counts.get(member.pk, {})
            rows.append(
                {
                    "program": member.program_id,
                    "code": code,
                    "link": request.build_absolute_uri(reverse("loyalty:referral", args=[code])),
                    "invited": found.get("invited", 0),
                    "rewarded": found.get("rewarded", 0),
                    "pending": found.get("pending", 0),
                }
            )
        return Response(s.ReferralSerializer(rows, many=True).data)


# --- points at checkout (headless shops) ------------------------------------------------------

CHECKOUT_PARAMS = [
    OpenApiParameter("basket", str, required=True, description="The shop's id of the basket (1 to 80 characters)."),
    OpenApiParameter("order_total", str, required=True, description="The goods' total before loyalty's discount."),
    OpenApiParameter("currency", str, required=True, description="The basket's currency (ISO 4217)."),
    PROGRAM_PARAM,
]


class CheckoutQuerySerializer(s.serializers.Serializer):
    basket = s.serializers.CharField(max_length=80)
    order_total = s.serializers.DecimalField(min_value=0, **s.MONEY)
    currency = s.serializers.CharField(min_length=3, max_length=3)
    program = s.serializers.IntegerField(min_value=1, max_value=s.MAX_ID, required=False)


def _checkout_member(request, currency: str, program: int | None = None) -> Member:
    """The customer's membership that pays in ``currency`` (or of ``program``)."""
    members = own_members(request.user).filter(program__currency=currency.upper())
    if program is not None:
        members = members.filter(program_id=program)
    member = members.first()
    if member is None:
        raise NotFound("You have no membership in a programme of that currency.")
    return member


class CheckoutPointsView(CustomerView):
    """Points as money at checkout, for headless shops: the choices for a basket (GET), using
    points on it (POST: debit and a single-use code to apply to the basket, idempotent per
    checkout token), and taking them off again (``checkout/points/remove/``)."""

    throttle_classes = [RedeemThrottle]

    @extend_schema(
        tags=["customer"],
        parameters=CHECKOUT_PARAMS,
        responses={200: s.CheckoutQuoteSerializer, **errors(400, 404, 409)},
    )
    def get(self, request):
        query = CheckoutQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        member = _checkout_member(request, data["currency"], data.get("program"))
        quote = services.points_discount_quote(
            member=member, order_total=data["order_total"], currency=data["currency"], basket=data["basket"]
        )
        return Response(s.CheckoutQuoteSerializer(quote).data)

    @extend_schema(
        tags=["customer"],
        request=s.CheckoutApplySerializer,
        responses={
            201: s.CheckoutCodeSerializer,
            200: OpenApiResponse(s.CheckoutCodeSerializer, description="The same points on the same checkout again."),
            **errors(400, 404, 409, 429),
        },
    )
    def post(self, request):
        body = s.CheckoutApplySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        member = _checkout_member(request, data["currency"])
        redemption = services.points_discount_apply(
            member=member,
            checkout_token=data["checkout_token"],
            points=data["points"],
            order_total=data["order_total"],
            currency=data["currency"],
        )
        replay = getattr(redemption, "replayed", False)
        return Response(
            s.CheckoutCodeSerializer(redemption).data, status=status.HTTP_200_OK if replay else status.HTTP_201_CREATED
        )


@extend_schema(
    tags=["customer"],
    request=s.CheckoutRemoveSerializer,
    responses={
        200: OpenApiResponse(s.CheckoutCodeSerializer, description="The code that stopped working (points back)."),
        204: OpenApiResponse(description="The checkout used no points."),
        **errors(400, 409),
    },
)
class CheckoutPointsRemoveView(CustomerView):
    """Take the points off a checkout: its code stops working and the points come back."""

    def post(self, request):
        body = s.CheckoutRemoveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        for member in own_members(request.user):
            try:
                services.checkout_basket(member=member, checkout_token=body.validated_data["checkout_token"])
            except LoyaltyError:
                continue
            removed = services.points_discount_remove(
                member=member, checkout_token=body.validated_data["checkout_token"]
            )
            if removed is None:
                return Response(status=status.HTTP_204_NO_CONTENT)
            return Response(s.CheckoutCodeSerializer(removed).data)
        # None of the customer's memberships: the service says why (expired, altered, another's).
        member = own_members(request.user).first()
        if member is None:
            raise NotFound("You are not a member of any programme.")
        services.checkout_basket(member=member, checkout_token=body.validated_data["checkout_token"])
        raise NotFound()


@extend_schema(exclude=True)
class UnknownEndpointView(APIView):
    """Every URL under the API's prefix that no endpoint matches: ``404 {"code": "not_found"}``
    for any method, signed in or not, instead of the site's HTML page."""

    authentication_classes: list = []
    permission_classes: list = []

    def dispatch(self, request, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        self.request = self.initialize_request(request, *args, **kwargs)
        self.headers = self.default_response_headers
        response = self.handle_exception(NotFound())
        self.response = self.finalize_response(self.request, response, *args, **kwargs)
        return self.response
