"""Django admin for loyalty, one module per area.

``base`` (shared helpers, the programme admin), ``members`` (the member page and its staff
actions), ``records`` (read-only ledger, purchases, order events), ``rules``, ``tiers``,
``rewards``, ``campaigns``, ``emails``, ``health``, ``surveys``, ``exports`` (CSV), and
``dashboard`` (the KPI page).
"""

from . import base, campaigns, emails, health, members, records, rewards, rules, surveys, tiers  # noqa: F401  (registers the ModelAdmins)

from . import dashboard  # noqa: F401  (after base: ProgramAdmin + dashboard URL)  # isort: skip
