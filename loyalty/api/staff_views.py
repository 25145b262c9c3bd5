"""Staff API views: member lookup, points adjustments, KPIs and campaign reports (``/staff/...``). Thin, as the
customer views in :mod:`.views`: reads through selectors, writes through services."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from ..models import Campaign, Member, Program
from ..selectors import kpis
from . import serializers as s
from .pagination import StaffPagination
from .permissions import HasLoyaltyPerms
from .views import ID_PARAM, PathIdMixin, errors


class StaffMixin:
    permission_classes = [IsAdminUser, HasLoyaltyPerms]
    required_perms = ("loyalty.view_member",)


def staff_members():
    return Member.objects.select_related("user", "tier", "health").order_by("-joined_at", "-id")


@extend_schema(
    tags=["staff"],
    parameters=[s.StaffMemberFilterSerializer],
    responses={200: s.StaffMemberSerializer, **errors(400)},
)
class StaffMemberListView(StaffMixin, generics.ListAPIView):
    """Members, filtered by programme, tier, segment, at risk; searched by email; paginated."""

    serializer_class = s.StaffMemberSerializer
    pagination_class = StaffPagination

    def get_queryset(self):
        query = s.StaffMemberFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        given = query.validated_data
        members = staff_members()
        if "program" in given:
            members = members.filter(program_id=given["program"])
        if "tier" in given:
            members = members.filter(tier_id=given["tier"])
        if "segment" in given:
            members = members.filter(health__segment=given["segment"])
        if given.get("at_risk") is not None:
            members = (
                members.filter(health__at_risk=True)
                if given["at_risk"]
                else members.filter(Q(health__isnull=True) | Q(health__at_risk=False))
            )
        if given.get("search"):
            members = members.filter(user__email__icontains=given["search"].strip())
        return members


@extend_schema(tags=["staff"], parameters=[ID_PARAM], responses={200: s.StaffMemberDetailSerializer, **errors(404)})
class StaffMemberDetailView(PathIdMixin, StaffMixin, generics.RetrieveAPIView):
    """One member, with their customer health (segment, RFM, P(alive), predicted value)."""

    serializer_class = s.StaffMemberDetailSerializer

    def get_queryset(self):
        return staff_members()


class StaffAdjustView(PathIdMixin, StaffMixin, APIView):
    """Add or take away points with a reason, recorded with the staff user (``services.points_adjust``).

    Needs ``loyalty.change_member``. The staff policy of ``services.staff`` applies, as in the admin:
    nobody adjusts their own membership (403 ``own_membership``); support agents (without
    ``loyalty.change_program``) move at most ``LOYALTY["SUPPORT_ADJUST_LIMIT"]`` points at once
    (403 ``adjust_limit_exceeded``) and ``LOYALTY["SUPPORT_DAILY_ADJUST_LIMIT"]`` a day (403
    ``daily_adjust_limit_exceeded``).
    """

    write_perms = ("loyalty.change_member",)

    @extend_schema(
        tags=["staff"],
        parameters=[ID_PARAM],
        request=s.AdjustRequestSerializer,
        responses={
            201: s.AdjustmentSerializer,
            200: OpenApiResponse(s.AdjustmentSerializer, description="The same idempotency key again."),
            **errors(400, 404, 409),
        },
    )
    def post(self, request, pk: int):
        member = get_object_or_404(Member.objects.select_related("program"), pk=pk)
        data = s.AdjustRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = None
        if client_key := data.validated_data.get("idempotency_key"):
            key = f"api-adjust:{member.pk}:{client_key}"
        # The staff policy (own membership, limits) is the service's: refusals are 403 with their code.
        entry = services.points_adjust(
            member=member,
            points=data.validated_data["points"],
            reason=data.validated_data["reason"],
            by=request.user,
            idempotency_key=key,
        )
        replay = getattr(entry, "replayed", False)
        entry.member.refresh_from_db(fields=["balance"])
        return Response(
            s.AdjustmentSerializer(entry).data, status=status.HTTP_200_OK if replay else status.HTTP_201_CREATED
        )


def plain(value):
    """A KPI dataclass (with its computed properties) as JSON-ready data: Decimal and dates as strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for name in dir(type(value)):
            if isinstance(getattr(type(value), name, None), property) and name not in data:
                data[name] = plain(getattr(value, name))
        return data
    if isinstance(value, Program):
        return value.pk
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


@extend_schema(tags=["staff"], parameters=[s.KpiQuerySerializer], responses={200: s.KpisSerializer, **errors(400, 404)})
class StaffKpisView(StaffMixin, APIView):
    """The dashboard's KPIs (``loyalty.selectors.kpis.dashboard``) for ``[start, end)`` of one programme."""

    required_perms = ("loyalty.view_member", "loyalty.view_program")

    def get(self, request):
        query = s.KpiQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        given = query.validated_data
        program = get_object_or_404(Program, pk=given["program"])
        board = kpis.dashboard(program=program, start=given["start"], end=given["end"], compare=given["compare"])
        body = {
            "program": program.pk,
            "start": board.start,
            "end": board.end,
            "current": plain(board.current),
            "previous": plain(board.previous),
            "campaigns": plain(board.campaigns),
            "revenue_by_month": plain(board.revenue_by_month),
            "points_by_month": plain(board.points_by_month),
            "nps_by_month": plain(board.nps_by_month),
        }
        return Response(s.KpisSerializer(body).data)


@extend_schema(tags=["staff"], parameters=[ID_PARAM], responses={200: s.CampaignReportSerializer, **errors(404)})
class StaffCampaignReportView(PathIdMixin, StaffMixin, APIView):
    """What a campaign achieved against its control group (``selectors.campaign_report``)."""

    required_perms = ("loyalty.view_campaign",)

    def get(self, request, pk: int):
        campaign = get_object_or_404(Campaign.objects.only("name"), pk=pk)
        report = selectors.campaign_report(campaign=campaign)
        return Response(s.CampaignReportSerializer({"campaign": campaign.pk, "name": campaign.name, **report}).data)
