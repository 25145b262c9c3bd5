"""Small shims so loyalty runs on every supported Django (4.2 LTS and 5.x)."""

from __future__ import annotations

import django
from django.db import models
from django.db.models import Q

# Django 5.1 renamed CheckConstraint's ``check`` to ``condition`` (the old name goes in 6.0).
_CHECK_KWARG = "condition" if django.VERSION >= (5, 1) else "check"


def check_constraint(*, condition: Q, name: str, **kwargs) -> models.CheckConstraint:
    """A ``CheckConstraint`` built with the keyword this Django expects; use it in models and migrations."""
    return models.CheckConstraint(**{_CHECK_KWARG: condition}, name=name, **kwargs)
