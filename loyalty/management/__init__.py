"""Loyalty's management commands live in ``commands/``."""
