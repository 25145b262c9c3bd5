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


def get_model_admin(site, model: type[models.Model]):
    """``site.get_model_admin(model)`` (Django 5.0+): the model's ModelAdmin, or ``NotRegistered``."""
    if hasattr(site, "get_model_admin"):
        return site.get_model_admin(model)
    from django.contrib.admin.sites import NotRegistered  # not at import time: models import this module

    try:
        return site._registry[model]
    except KeyError:
        raise NotRegistered(f"The model {model.__name__} is not registered.") from None
