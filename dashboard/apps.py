"""App config for the DPO dashboard."""

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    label = "dashboard"
    verbose_name = "DPO dashboard"
    default_auto_field = "django.db.models.BigAutoField"
