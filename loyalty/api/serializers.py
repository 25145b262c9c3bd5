"""Serializers: what the API shows (output) and accepts (input). No writes here: views call services."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import Member, PointsEntry, Redemption, Reward, Segment
from ..selectors import history_row

MONEY = {"max_digits": 14, "decimal_places": 2}
#: Ids fit a BigAutoField: larger ones are refused as input (Django < 5.0 on SQLite would raise on them).
MAX_ID = 2**63 - 1


class ErrorSerializer(serializers.Serializer):
    """Every error: a stable ``code``, a message, and for invalid input the fields' messages."""

    code = serializers.CharField()
    detail = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


# --- customers ------------------------------------------------------------------------------


class ProgramRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()
    currency = serializers.CharField()


class TierRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    rank = serializers.IntegerField()
    colour = serializers.CharField()


class TierProgressSerializer(serializers.Serializer):
    """``value``/``missing``: money for spend-qualified tiers, points for points-qualified ones."""

    next_tier = TierRefSerializer(allow_null=True)
    qualifies_by = serializers.CharField(allow_null=True)
    window_days = serializers.IntegerField(allow_null=True)
    value = serializers.DecimalField(allow_null=True, **MONEY)
    missing = serializers.DecimalField(allow_null=True, **MONEY)
    fraction = serializers.FloatField()
    tier_kept_until = serializers.DateTimeField(allow_null=True)


class ExpiringSerializer(serializers.Serializer):
    points = serializers.IntegerField()
    at = serializers.DateTimeField()
    whole_balance = serializers.BooleanField()


class MembershipSerializer(serializers.Serializer):
    """One programme membership of the signed-in customer (no health or segment data)."""

    id = serializers.IntegerField(source="member.pk")
    program = ProgramRefSerializer(source="member.program")
    balance = serializers.IntegerField(source="member.balance")
    balance_value = serializers.DecimalField(source="member.balance_value", **MONEY)
    pending_points = serializers.IntegerField(source="member.pending_points")
    lifetime_points = serializers.IntegerField(source="member.lifetime_points")
    joined_at = serializers.DateTimeField(source="member.joined_at")
    tier = TierRefSerializer(source="member.tier", allow_null=True)
    progress = TierProgressSerializer(allow_null=True)
    expiring = ExpiringSerializer(allow_null=True)


class LedgerEntrySerializer(serializers.ModelSerializer):
    """A ledger row; ``title`` and ``note`` say it in the customer's words (translated)."""

    program = serializers.IntegerField(source="program_id")
    title = serializers.SerializerMethodField()
    note = serializers.SerializerMethodField()
    expires_at = serializers.SerializerMethodField()

    class Meta:
        model = PointsEntry
        fields = ["id", "program", "kind", "points", "title", "note", "reference", "expires_at", "created_at"]

    def _row(self, entry):
        cache = self.context.setdefault("_rows", {})
        if entry.pk not in cache:
            cache[entry.pk] = history_row(entry)
        return cache[entry.pk]

    @extend_schema_field(OpenApiTypes.STR)
    def get_title(self, entry) -> str:
        return str(self._row(entry).title)

    @extend_schema_field(OpenApiTypes.STR)
    def get_note(self, entry) -> str:
        return str(self._row(entry).note)

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_expires_at(self, entry):
        expires = self._row(entry).expires_at
        return serializers.DateTimeField().to_representation(expires) if expires else None


class RewardOptionSerializer(serializers.Serializer):
    """A reward on offer to the customer: ``affordable`` when the balance covers it
    (``missing_points`` = 0); ``redeemable`` when, besides, nothing else stands in the way."""

    id = serializers.IntegerField(source="reward.pk")
    program = serializers.IntegerField(source="reward.program_id")
    name = serializers.CharField(source="reward.name")
    description = serializers.CharField(source="reward.description")
    kind = serializers.CharField(source="reward.kind")
    points_cost = serializers.IntegerField(source="reward.points_cost")
    value = serializers.DecimalField(source="reward.value", allow_null=True, **MONEY)
    min_order_value = serializers.DecimalField(source="reward.min_order_value", allow_null=True, **MONEY)
    affordable = serializers.SerializerMethodField()
    missing_points = serializers.IntegerField()
    redeemable = serializers.BooleanField()
    unavailable_because = serializers.CharField()

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_affordable(self, option) -> bool:
        return option.missing_points == 0


class RewardRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Reward
        fields = ["id", "name", "kind"]


class RedemptionSerializer(serializers.ModelSerializer):
    program = serializers.IntegerField(source="program_id")
    reward = RewardRefSerializer()

    class Meta:
        model = Redemption
        fields = [
            "id",
            "program",
            "reward",
            "points",
            "code",
            "status",
            "expires_at",
            "created_at",
            "used_at",
            "order_reference",
        ]


#: Room left in the service's 190-character key once the API scopes it per member.
IDEMPOTENCY_KEY_MAX = 100


class RedeemRequestSerializer(serializers.Serializer):
    reward = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The id of a reward from GET rewards/.")
    idempotency_key = serializers.CharField(
        max_length=IDEMPOTENCY_KEY_MAX,
        help_text="A key the client makes per redemption attempt (e.g. a UUID): sending it again "
        "returns the first redemption instead of spending twice.",
    )


# --- points at checkout ---------------------------------------------------------------------


class CheckoutCodeSerializer(serializers.ModelSerializer):
    """Points used at one checkout: the single-use ``code`` to apply to the basket, for ``amount``."""

    program = serializers.IntegerField(source="program_id")
    amount = serializers.DecimalField(**MONEY)
    currency = serializers.CharField(source="program.currency")

    class Meta:
        model = Redemption
        fields = ["id", "program", "points", "amount", "currency", "code", "status", "expires_at", "created_at"]


class CheckoutQuoteSerializer(serializers.Serializer):
    """What the customer may use on this basket. ``max_points`` 0: nothing now, ``refusal`` says
    why (``insufficient_points``, ``below_minimum``, ``points_above_cap``)."""

    program = serializers.IntegerField(source="reward.program_id")
    reward = RewardRefSerializer()
    currency = serializers.CharField()
    order_total = serializers.DecimalField(**MONEY)
    balance = serializers.IntegerField(help_text="Points usable here, the ones this checkout's code holds included.")
    point_value = serializers.DecimalField(max_digits=10, decimal_places=4)
    step = serializers.IntegerField()
    min_points = serializers.IntegerField()
    max_points = serializers.IntegerField()
    max_amount = serializers.DecimalField(**MONEY)
    refusal = serializers.CharField()
    detail = serializers.CharField(source="message")
    applied = CheckoutCodeSerializer(allow_null=True, help_text="This checkout's code, if points are used on it.")
    checkout_token = serializers.CharField(help_text="Send it back to apply or remove points.")


class LenientPointsField(serializers.Field):
    """Points as sent: a number or a numeric string; the service refuses what is not a whole
    positive number in steps, with a stable code (``points_not_whole``...)."""

    def to_internal_value(self, data):
        from decimal import Decimal, InvalidOperation

        if isinstance(data, bool) or data is None:
            return data
        if isinstance(data, int):
            return data
        try:
            value = Decimal(str(data).strip())
        except InvalidOperation:
            return str(data)
        return int(value) if value.is_finite() and value == value.to_integral_value() else value

    def to_representation(self, value):
        return value


@extend_schema_field(OpenApiTypes.INT)
class PointsField(LenientPointsField):
    pass


class CheckoutApplySerializer(serializers.Serializer):
    checkout_token = serializers.CharField(max_length=500, help_text="From GET checkout/points/.")
    points = PointsField(help_text="Whole points, a multiple of `step`, between `min_points` and `max_points`.")
    order_total = serializers.DecimalField(
        min_value=0, help_text="The basket's goods before loyalty's discount.", **MONEY
    )
    currency = serializers.CharField(min_length=3, max_length=3)


class CheckoutRemoveSerializer(serializers.Serializer):
    checkout_token = serializers.CharField(max_length=500)


class ReferralSerializer(serializers.Serializer):
    program = serializers.IntegerField()
    code = serializers.CharField()
    link = serializers.URLField()
    invited = serializers.IntegerField(help_text="Friends who signed up with the code.")
    rewarded = serializers.IntegerField(help_text="... of whom placed a first order that was rewarded.")
    pending = serializers.IntegerField()


# --- staff ----------------------------------------------------------------------------------


class StaffMemberSerializer(serializers.ModelSerializer):
    program = serializers.IntegerField(source="program_id")
    email = serializers.EmailField(source="user.email")
    name = serializers.SerializerMethodField()
    tier = TierRefSerializer(allow_null=True)
    segment = serializers.SerializerMethodField()
    at_risk = serializers.SerializerMethodField()

    class Meta:
        model = Member
        fields = [
            "id",
            "program",
            "email",
            "name",
            "balance",
            "pending_points",
            "lifetime_points",
            "tier",
            "segment",
            "at_risk",
            "orders_count",
            "last_purchase_at",
            "joined_at",
        ]

    @extend_schema_field(OpenApiTypes.STR)
    def get_name(self, member) -> str:
        return member.user.get_full_name()

    @staticmethod
    def _health(member):
        try:
            return member.health
        except Member.health.RelatedObjectDoesNotExist:
            return None

    @extend_schema_field(serializers.ChoiceField(choices=Segment.choices, allow_blank=True))
    def get_segment(self, member) -> str:
        health = self._health(member)
        return health.segment if health else ""

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_at_risk(self, member) -> bool:
        health = self._health(member)
        return bool(health and health.at_risk)


class HealthSerializer(serializers.Serializer):
    segment = serializers.CharField()
    segment_since = serializers.DateTimeField()
    at_risk = serializers.BooleanField()
    risk_reason = serializers.CharField()
    orders = serializers.IntegerField()
    recency_days = serializers.IntegerField(allow_null=True)
    typical_gap_days = serializers.FloatField(allow_null=True)
    total_spent = serializers.DecimalField(**MONEY)
    monetary = serializers.DecimalField(**MONEY)
    r_score = serializers.IntegerField(allow_null=True)
    f_score = serializers.IntegerField(allow_null=True)
    m_score = serializers.IntegerField(allow_null=True)
    p_alive = serializers.FloatField(allow_null=True)
    p_lapse = serializers.FloatField(allow_null=True)
    expected_purchases = serializers.FloatField(allow_null=True)
    expected_next_order_on = serializers.DateField(allow_null=True)
    predicted_clv = serializers.DecimalField(allow_null=True, **MONEY)
    scored_by = serializers.CharField()
    computed_at = serializers.DateTimeField()


class StaffMemberDetailSerializer(StaffMemberSerializer):
    health = serializers.SerializerMethodField()
    referral_code = serializers.CharField(allow_null=True)
    marketing_consent = serializers.BooleanField()

    class Meta(StaffMemberSerializer.Meta):
        fields = [*StaffMemberSerializer.Meta.fields, "referral_code", "marketing_consent", "health"]

    @extend_schema_field(HealthSerializer(allow_null=True))
    def get_health(self, member):
        health = self._health(member)
        return HealthSerializer(health).data if health else None


class StaffMemberFilterSerializer(serializers.Serializer):
    program = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    tier = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    segment = serializers.ChoiceField(choices=Segment.choices, required=False)
    at_risk = serializers.BooleanField(required=False, allow_null=True, default=None)
    search = serializers.CharField(required=False, max_length=254, help_text="Part of the member's email.")


class AdjustRequestSerializer(serializers.Serializer):
    points = serializers.IntegerField(
        min_value=-10_000_000, max_value=10_000_000, help_text="Positive to add, negative to take away; not 0."
    )
    reason = serializers.CharField(max_length=255, help_text="Why; shown to the customer in their history.")
    idempotency_key = serializers.CharField(
        max_length=IDEMPOTENCY_KEY_MAX, required=False, help_text="Send the same key again: no second adjustment."
    )

    def validate_points(self, value: int) -> int:
        if value == 0:
            raise serializers.ValidationError("Points must be a whole number other than zero.", code="zero")
        return value


class AdjustmentSerializer(serializers.ModelSerializer):
    member = serializers.IntegerField(source="member_id")
    reason = serializers.CharField(source="description")
    balance = serializers.SerializerMethodField()
    created_by = serializers.IntegerField(source="created_by_id", allow_null=True)

    class Meta:
        model = PointsEntry
        fields = ["id", "member", "points", "reason", "balance", "created_by", "created_at"]

    @extend_schema_field(OpenApiTypes.INT)
    def get_balance(self, entry) -> int:
        return entry.member.balance


class KpiQuerySerializer(serializers.Serializer):
    program = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    start = serializers.DateTimeField(required=False, help_text="Default: 365 days before ``end``.")
    end = serializers.DateTimeField(required=False, help_text="Default: now. The period is [start, end).")
    compare = serializers.BooleanField(required=False, default=True, help_text="Also the equal period before.")

    def validate(self, attrs):
        end = attrs.get("end") or timezone.now()
        start = attrs.get("start") or end - timedelta(days=365)
        if end <= start:
            raise serializers.ValidationError({"end": ["The period must end after it starts."]}, code="period")
        if end - start > timedelta(days=3660):
            raise serializers.ValidationError({"start": ["The period may be at most ten years."]}, code="period")
        return {**attrs, "start": start, "end": end}


class KpisSerializer(serializers.Serializer):
    """``loyalty.selectors.kpis.dashboard`` as JSON: money as decimal strings, ratios as fractions (0.25 = 25 %)."""

    program = serializers.IntegerField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    current = serializers.JSONField(
        help_text="orders, lifetime_value, points, members and voice (survey answers: NPS, CSAT) of the period."
    )
    previous = serializers.JSONField(allow_null=True, help_text="The same for the equal period just before.")
    campaigns = serializers.JSONField()
    revenue_by_month = serializers.JSONField()
    points_by_month = serializers.JSONField()
    nps_by_month = serializers.JSONField(help_text="NPS and CSAT per month of the last twelve (docs/dashboard.md).")


class ControlGroupSerializer(serializers.Serializer):
    members = serializers.IntegerField()
    converted = serializers.IntegerField()
    revenue = serializers.DecimalField(**MONEY)
    conversion_rate = serializers.DecimalField(max_digits=7, decimal_places=2, allow_null=True)


class CampaignReportSerializer(serializers.Serializer):
    """``selectors.campaign_report``: counts of messages, money, rates in percent."""

    campaign = serializers.IntegerField()
    name = serializers.CharField()
    eligible = serializers.IntegerField()
    queued = serializers.IntegerField()
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()
    unsubscribed = serializers.IntegerField()
    converted = serializers.IntegerField()
    revenue = serializers.DecimalField(**MONEY)
    conversion_rate = serializers.DecimalField(max_digits=7, decimal_places=2, allow_null=True)
    control = ControlGroupSerializer()
    uplift = serializers.DecimalField(max_digits=9, decimal_places=2, allow_null=True)
    relative_uplift = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
