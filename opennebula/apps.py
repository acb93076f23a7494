"""App config for the OpenNebula adapter (its own app so it owns its models and migrations)."""

from django.apps import AppConfig


class OpenNebulaConfig(AppConfig):
    name = "opennebula"
    label = "opennebula"
    verbose_name = "OpenNebula workloads"
