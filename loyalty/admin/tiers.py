"""Admin for tiers (registered on import from loyalty/admin/__init__.py)."""
