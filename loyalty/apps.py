from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = _("Loyalty")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, config_cache  # noqa: F401  (registers system checks and cache invalidation)
        from .receivers import connect_adapter, connect_campaign_schedules, connect_enrolment, connect_referrals

        connect_adapter()
        connect_enrolment()
        connect_referrals()
        connect_campaign_schedules()
