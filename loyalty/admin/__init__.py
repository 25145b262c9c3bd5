"""Django admin for loyalty, one module per area.

``base`` (shared helpers, the programme admin), ``members`` (the member page and its staff
actions), ``records`` (read-only ledger, purchases, order events), ``rules``, ``tiers``,
``rewards``, ``campaigns``, ``emails``, ``health``, ``surveys``, ``exports`` (CSV), and
the ``dashboard`` package (the KPI page, served from ``ProgramAdmin.get_urls``).
"""

from . import base, campaigns, emails, health, members, records, rewards, rules, surveys, tiers  # noqa: F401  (registers the ModelAdmins)
