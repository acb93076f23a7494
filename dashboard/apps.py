"""App config for the DPO dashboard."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DashboardConfig(AppConfig):
    name = "dashboard"
    label = "dashboard"
    verbose_name = _("DPO dashboard")
    default_auto_field = "django.db.models.BigAutoField"
