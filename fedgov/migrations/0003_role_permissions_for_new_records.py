"""Role permissions for the records added since 0002: the adequacy list, trusted keys and
witness cosignatures.

The record readers (DPO, Legal, Auditor) read all three; operators, who read the ledger
and its checkpoints, read the keys and cosignatures that make those checkpoints count.
Only the DPO records a new version of the adequacy list (Art. 45 decisions are data).
"""

from django.db import migrations

ADDED = {
    "Auditor": [
        "sites.view_adequacylistversion",
        "audit.view_trustedkey",
        "audit.view_cosignature",
    ],
    "Legal": ["sites.view_adequacylistversion", "audit.view_trustedkey", "audit.view_cosignature"],
    "DPO": [
        "sites.view_adequacylistversion",
        "sites.add_adequacylistversion",
        "audit.view_trustedkey",
        "audit.view_cosignature",
    ],
    "Operator": ["audit.view_trustedkey", "audit.view_cosignature"],
}


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # As in 0002: on a fresh database post_migrate has not made the permissions yet.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in ADDED.items():
        group, _ = Group.objects.get_or_create(name=role)
        for name in names:
            app_label, codename = name.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in ADDED.items():
        group = Group.objects.filter(name=role).first()
        if group is None:
            continue
        for name in names:
            app_label, codename = name.split(".")
            group.permissions.remove(
                *Permission.objects.filter(content_type__app_label=app_label, codename=codename)
            )


class Migration(migrations.Migration):
    dependencies = [
        ("fedgov", "0002_role_permissions"),
        ("sites", "0003_transfer_register_and_adequacy_list"),
        ("audit", "0007_witness_cosignatures"),
    ]
    operations = [migrations.RunPython(grant, revoke)]
