"""Admin for rules (registered on import from loyalty/admin/__init__.py)."""
