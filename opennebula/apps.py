"""App config for the OpenNebula adapter (its own app so it owns its models and migrations)."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OpenNebulaConfig(AppConfig):
    name = "opennebula"
    label = "opennebula"
    verbose_name = _("OpenNebula workloads")
