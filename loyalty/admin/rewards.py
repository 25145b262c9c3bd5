"""Admin for rewards (registered on import from loyalty/admin/__init__.py)."""
