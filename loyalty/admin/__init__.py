"""Django admin for loyalty, one module per area."""

from . import base, campaigns, health, rewards, rules, tiers  # noqa: F401  (registers the ModelAdmins)
