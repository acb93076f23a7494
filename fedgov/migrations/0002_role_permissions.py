"""Give each role group its Django model permissions: what its admin pages let it do.

The table below is the data; ``tests/test_role_admin_matrix.py`` checks every role ×
admin page and action against it. It is frozen here on purpose: a later change to who
may do what is a new migration, so a deployment's permissions have a history.
Services still enforce the domain rules (four-eyes, a steward's own site); these
permissions decide what the admin shows and lets a role try.
"""

from django.db import migrations

VIEW_ALL = {
    "sites": [
        "site",
        "sitesteward",
        "purpose",
        "dataset",
        "residencypolicy",
        "consent",
        "consentevent",
    ],
    "training": ["trainingrun", "round", "gatedecision", "dpia"],
    "audit": ["ledgerentry", "checkpoint", "legalhold"],
    "reports": ["report"],
    "dashboard": ["ledgerverification"],
    "opennebula": ["workload"],
}


def _views(app, models):
    return [f"{app}.view_{model}" for model in models]


READ_EVERYTHING = [perm for app, models in VIEW_ALL.items() for perm in _views(app, models)]

ROLE_PERMISSIONS = {
    # Reads everything, changes nothing.
    "Auditor": READ_EVERYTHING,
    # Reads everything; places legal holds and requests reports (Art. 30, evidence).
    "Legal": [*READ_EVERYTHING, "audit.add_legalhold", "reports.add_report"],
    # Keeps the records: sites, stewards, purposes, datasets, policies, DPIAs; may also
    # request a run (as the API allows) and verify the ledger.
    "DPO": [
        *READ_EVERYTHING,
        *(
            f"sites.{a}_{m}"
            for m in ("site", "sitesteward", "dataset", "residencypolicy")
            for a in ("add", "change")
        ),
        "sites.add_purpose",
        "sites.add_consentevent",
        "training.add_dpia",
        "training.change_dpia",
        "training.add_trainingrun",
        "audit.add_legalhold",
        "reports.add_report",
        "dashboard.add_ledgerverification",
    ],
    # Runs training: reads the records a run depends on, requests runs, watches rounds.
    # No consent rows (subject pseudonyms), legal holds or reports.
    "Operator": [
        *_views("sites", ["site", "purpose", "dataset", "residencypolicy"]),
        *_views("training", ["trainingrun", "round", "gatedecision", "dpia"]),
        *_views("audit", ["ledgerentry", "checkpoint"]),
        *_views("opennebula", ["workload"]),
        "training.add_trainingrun",
    ],
    # One site's records (the admin scopes rows to the steward's site) and its consent.
    "Site steward": [
        *_views("sites", ["site", "purpose", "dataset", "consent", "consentevent"]),
        "sites.add_consentevent",
    ],
    # The Flower strategy's API identity: no admin at all.
    "Service": [],
}


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are made by post_migrate, after every migration; on a fresh database
    # they do not exist yet here, so make them now (the same call, idempotent).
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        perms = []
        for name in names:
            app_label, codename = name.split(".")
            perms.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(perms)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.filter(name__in=ROLE_PERMISSIONS):
        group.permissions.clear()


class Migration(migrations.Migration):
    dependencies = [
        ("fedgov", "0001_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("sites", "0002_status_reason_and_withdrawal_reason"),
        ("training", "0001_initial"),
        ("audit", "0005_retention_and_legal_hold"),
        ("reports", "0001_initial"),
        ("dashboard", "0001_initial"),
        ("opennebula", "0001_initial"),
    ]
    operations = [migrations.RunPython(grant, revoke)]
