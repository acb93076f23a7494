"""fedgov's own app: roles (groups) live in its migrations."""

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


def ensure_roles(sender, using="default", **kwargs) -> None:
    """Recreate the role groups after a flush, as Django does for content types.

    ``flush`` (every transactional test, a reset demo) empties auth_group, but migrations
    do not run again; without this every later role check would fail.
    """
    from django.contrib.auth.models import Group

    from fedgov.roles import ALL_ROLES

    for name in ALL_ROLES:
        Group.objects.using(using).get_or_create(name=name)


class FedgovConfig(AppConfig):
    name = "fedgov"
    verbose_name = "fedgov"

    def ready(self) -> None:
        # Django sends post_migrate only for apps with models; auth's is the one to follow.
        auth = apps.get_app_config("auth")
        post_migrate.connect(ensure_roles, sender=auth, dispatch_uid="fedgov.ensure_roles")
        # fedgov's collector on the default registry, once per process (fedgov/metrics.py).
        from fedgov import metrics

        metrics.register()
