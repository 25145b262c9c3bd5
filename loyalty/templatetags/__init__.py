"""Template tags: ``loyalty_tags`` (the account panel for shop pages) and ``loyalty_admin`` (admin templates)."""
