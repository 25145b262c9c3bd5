"""The demo shop's own Django-version shim (it never imports loyalty).

Django 5.1 renamed ``CheckConstraint(check=)`` to ``condition=``; the shop supports 4.2 and 5.2.
"""

from __future__ import annotations

import django
from django.db import models
from django.db.models import Q

_CHECK_KWARG = "condition" if django.VERSION >= (5, 1) else "check"


def check_constraint(*, condition: Q, name: str, **kwargs) -> models.CheckConstraint:
    """A ``CheckConstraint`` built with the keyword this Django expects; use it in models and migrations."""
    return models.CheckConstraint(**{_CHECK_KWARG: condition}, name=name, **kwargs)
