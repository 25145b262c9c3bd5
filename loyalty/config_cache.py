"""The programme's tiers and earning rules, cached per process and keyed by
``Program.config_changed_at`` (bumped whenever they change), so processing an order needs
no extra query to know them: the member query already joins the programme."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from .models import EarningRule, Program, Tier


@dataclass(frozen=True)
class ProgramConfig:
    tiers: tuple[Tier, ...]  # by rank, lowest first
    rules_by_kind: dict[str, tuple[EarningRule, ...]] = field(default_factory=dict)

    def active_rules(self, kind: str, at: datetime) -> list[EarningRule]:
        return [
            rule
            for rule in self.rules_by_kind.get(kind, ())
            if rule.is_active
            and (rule.active_from is None or rule.active_from <= at)
            and (rule.active_until is None or at < rule.active_until)
        ]

    def campaign_multiplier(self, *, amount: Decimal, at: datetime) -> Decimal:
        """Product of the multiplier campaigns running at ``at`` that the order qualifies for."""
        result = Decimal("1")
        for rule in self.active_rules(EarningRule.Kind.MULTIPLIER, at):
            if rule.min_order_amount is None or amount >= rule.min_order_amount:
                result *= rule.multiplier
        return result

    def tier_by_id(self, tier_id: int | None) -> Tier | None:
        return next((t for t in self.tiers if t.pk == tier_id), None)


_cache: dict[int, tuple[datetime, ProgramConfig]] = {}


def program_config(program: Program) -> ProgramConfig:
    cached = _cache.get(program.pk)
    if cached and cached[0] == program.config_changed_at:
        return cached[1]
    tiers = tuple(Tier.objects.filter(program=program).order_by("rank"))
    rules = tuple(EarningRule.objects.filter(program=program).order_by("id"))
    by_kind: dict[str, tuple[EarningRule, ...]] = {}
    for rule in rules:
        by_kind[rule.kind] = (*by_kind.get(rule.kind, ()), rule)
    config = ProgramConfig(tiers=tiers, rules_by_kind=by_kind)
    _cache[program.pk] = (program.config_changed_at, config)
    return config


def _bump(sender, instance, **kwargs) -> None:
    program_id = getattr(instance, "program_id", None)
    if program_id:
        Program.objects.filter(pk=program_id).update(config_changed_at=timezone.now())
    _cache.pop(program_id, None)


for _model in (Tier, EarningRule):
    post_save.connect(_bump, sender=_model, dispatch_uid=f"loyalty_config_bump_{_model.__name__}")
    post_delete.connect(_bump, sender=_model, dispatch_uid=f"loyalty_config_bump_del_{_model.__name__}")


def paying_rules(program: Program, kind: str, at: datetime, amount: Decimal | None = None) -> list[EarningRule]:
    """Bonus rules of ``kind`` that pay at ``at`` (and that an order of ``amount`` meets, if given).

    A switched-off programme pays no bonuses at all.
    """
    if not program.is_active:
        return []
    return [
        rule
        for rule in program_config(program).active_rules(kind, at)
        if rule.points > 0 and (amount is None or rule.min_order_amount is None or amount >= rule.min_order_amount)
    ]
