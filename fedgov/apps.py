"""fedgov's own app: roles (groups) live in its migrations."""

from django.apps import AppConfig, apps
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Field
from django.db.models.signals import post_migrate

# Every fedgov migration that grants roles permissions, with the table it grants them in.
# A new one must be added here, or ensure_roles would not restore its grants after a flush
# (tests/fedgov/test_role_permission_migrations.py checks that none is missing).
ROLE_PERMISSION_TABLES: tuple[tuple[str, str], ...] = (
    ("fedgov.migrations.0002_role_permissions", "ROLE_PERMISSIONS"),
    ("fedgov.migrations.0003_role_permissions_for_new_records", "ADDED"),
)


def role_permissions() -> dict[str, list[str]]:
    """Each role's permissions as fedgov's data migrations left them, in their order.

    The migrations hold the tables (a change of who may do what is a new migration);
    this reads them rather than keeping a second copy that could drift.
    """
    import importlib

    merged: dict[str, list[str]] = {}
    for module, table in ROLE_PERMISSION_TABLES:
        for role, names in getattr(importlib.import_module(module), table).items():
            merged.setdefault(role, []).extend(names)
    return merged


def ensure_roles(sender, using="default", **kwargs) -> None:
    """Recreate the role groups and their permissions after a flush, as Django does for
    content types and permissions.

    ``flush`` (every transactional test, a reset demo) empties auth_group and its
    permission links, but migrations do not run again; without this every later role
    check would fail, or an admin page would refuse a DPO. A group that already holds
    permissions is left as it is (a deployment may have changed them on purpose).
    """
    from django.apps import apps as registry
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    from fedgov.roles import ALL_ROLES

    table = role_permissions()
    # Permissions of apps later in INSTALLED_APPS than auth are made by their own
    # post_migrate, which may not have run yet: make them now (idempotent).
    for app_config in registry.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)
    for name in ALL_ROLES:
        group, _ = Group.objects.using(using).get_or_create(name=name)
        if group.permissions.exists() or not table.get(name):
            continue
        wanted = [tuple(p.split(".", 1)) for p in table[name]]
        perms = Permission.objects.using(using).filter(
            content_type__app_label__in={a for a, _ in wanted},
            codename__in={c for _, c in wanted},
        )
        group.permissions.set(
            [p for p in perms if (p.content_type.app_label, p.codename) in wanted]
        )


class FedgovConfig(AppConfig):
    name = "fedgov"
    verbose_name = "fedgov"

    def ready(self) -> None:
        # Django sends post_migrate only for apps with models; auth's is the one to follow.
        auth = apps.get_app_config("auth")
        post_migrate.connect(ensure_roles, sender=auth, dispatch_uid="fedgov.ensure_roles")
        # The user's chosen language is read once per sign-in (fedgov/i18n.py).
        from django.contrib.auth.signals import user_logged_in

        from fedgov.i18n import remember_on_sign_in

        user_logged_in.connect(remember_on_sign_in, dispatch_uid="fedgov.language_on_sign_in")
        # fedgov's collector on the default registry, once per process (fedgov/metrics.py).
        from fedgov import metrics

        metrics.register()
        name_third_party_models()


def name_third_party_models() -> None:
    """Names in the reader's language for another package's admin entries that it leaves
    unmarked: django-otp names its app, TOTPDevice and every field of it in English only,
    so the admin's sidebar read "OTP_TOTP / TOTP devices" and the device list "User, Name,
    Created at, Confirmed" to every reader. Lazy strings whose English is the package's
    own text, so its migrations see no change (makemigrations --check); a field's label
    and help text serve the list's columns, its filters and the change page alike."""
    from django.utils.translation import gettext_lazy as _

    try:
        config = apps.get_app_config("otp_totp")
    except LookupError:  # a deployment without the second factor's app
        return
    config.verbose_name = _("Authenticator apps (TOTP)")
    device = config.get_model("TOTPDevice")
    device._meta.verbose_name = _("TOTP device")
    device._meta.verbose_name_plural = _("TOTP devices")
    # name -> (label, help text), the help text word for word django-otp 1.7's: a release
    # that rewords one shows up as a change to its migrations (makemigrations --check).
    fields = {
        "user": (_("user"), _("The user that this device belongs to.")),
        "name": (_("name"), _("The human-readable name of this device.")),
        "confirmed": (_("confirmed"), _("Is this device ready for use?")),
        "created_at": (
            _("created at"),
            _("The date and time when this device was initially created in the system."),
        ),
        "last_used_at": (
            _("last used at"),
            _("The most recent date and time this device was used."),
        ),
        "key": (_("key"), _("A hex-encoded secret key of up to 40 bytes.")),
        "step": (_("step"), _("The time step in seconds.")),
        "t0": (_("t0"), _("The Unix time at which to begin counting steps.")),
        "digits": (_("digits"), _("The number of digits to expect in a token.")),
        "tolerance": (
            _("tolerance"),
            _("The number of time steps in the past or future to allow."),
        ),
        "drift": (
            _("drift"),
            _("The number of time steps the prover is known to deviate from our clock."),
        ),
        "last_t": (
            _("last t"),
            _(
                "The t value of the latest verified token. The next token must be at a "
                "higher time step."
            ),
        ),
        "throttling_failure_timestamp": (
            _("throttling failure timestamp"),
            _(
                "A timestamp of the last failed verification attempt. Null if last attempt "
                "succeeded."
            ),
        ),
        "throttling_failure_count": (
            _("throttling failure count"),
            _("Number of successive failed attempts."),
        ),
    }
    for name, (label, help_text) in fields.items():
        try:
            field = device._meta.get_field(name)
        except FieldDoesNotExist:  # another django-otp release: its other fields stay as they are
            continue
        if not isinstance(field, Field):  # a reverse relation has no label of its own here
            continue
        field.verbose_name = label
        field.help_text = help_text
