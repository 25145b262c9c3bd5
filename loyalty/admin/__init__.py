"""Django admin for loyalty, one module per area."""

from . import base, rewards, rules, tiers  # noqa: F401  (registers the ModelAdmins)
