"""``loyalty_check_ledger``, ``loyalty_setup_schedules``, ``loyalty_backfill``, ``loyalty_refresh_health``,
``loyalty_preview_emails``: each a thin wrapper over a service."""
