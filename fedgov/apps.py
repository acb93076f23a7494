"""fedgov's own app: roles (groups) live in its migrations."""

from django.apps import AppConfig


class FedgovConfig(AppConfig):
    name = "fedgov"
    verbose_name = "fedgov"
