"""Django admin for loyalty, one module per area."""

from . import base, campaigns, emails, health, rewards, rules, surveys, tiers  # noqa: F401  (registers the ModelAdmins)

from . import dashboard  # noqa: F401  (after base: ProgramAdmin + dashboard URL)  # isort: skip
