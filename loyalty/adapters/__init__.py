"""Adapters join a shop to loyalty: ``base`` (``OrderEvent``, ``BaseAdapter`` and what an
adapter returns), ``oscar`` (the ready adapter for django-oscar; its backfill in
``oscar_history``), and the registry here: :func:`get_adapter`, the one way loyalty reaches
the adapter configured in ``LOYALTY["ADAPTER"]``."""

from __future__ import annotations

from typing import Any

from django.core.signals import setting_changed

from ..conf import loyalty_settings
from .base import BaseAdapter

#: (configured class, its instance): one adapter per process.
_instance: tuple[type, BaseAdapter] | None = None


def get_adapter() -> BaseAdapter | None:
    """The configured adapter, or ``None`` without one.

    One instance per process, made on first use: the adapter is asked on every paid order
    (discount codes used) and every redemption, so it is not built anew each time (adapters
    are stateless, docs/adapters.md). The instance is keyed on the configured class and
    dropped when the ``LOYALTY`` setting changes (tests override it)."""
    global _instance
    adapter_class = loyalty_settings.ADAPTER
    if not adapter_class:
        return None
    cached = _instance
    if cached is not None and cached[0] is adapter_class:
        return cached[1]
    adapter = adapter_class()
    _instance = (adapter_class, adapter)
    return adapter


def _forget_adapter(*, setting: str, **kwargs: Any) -> None:
    global _instance
    if setting == "LOYALTY":
        _instance = None


setting_changed.connect(_forget_adapter)

__all__ = ["get_adapter"]
