"""The publish_case permission and the "Health officials" group.

Health officials manage cases and their visits, publish and withdraw them, and may look
venues up (the case visit's venue autocomplete needs view_venue). Nobody else gets any
permission on cases: staff outside the group see nothing of them.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "Health officials"
PERMISSIONS = {
    "notifications": [
        "view_case",
        "add_case",
        "change_case",
        "publish_case",
        "view_casevisit",
        "add_casevisit",
        "change_casevisit",
        "delete_casevisit",
        "view_matchingrun",
    ],
    "venues": ["view_venue"],
}


def create_group(apps, schema_editor):
    # Permissions are normally created after all migrations; make sure these exist now.
    for label in PERMISSIONS:
        app_config = apps.get_app_config(label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    for label, codenames in PERMISSIONS.items():
        group.permissions.add(*Permission.objects.filter(content_type__app_label=label, codename__in=codenames))


def delete_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0005_visittoken_partitioned"),
        ("venues", "0003_venue_administrators_group"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="case",
            options={
                "ordering": ["-confirmed_on", "-created_at"],
                "permissions": [("publish_case", "Can publish and withdraw cases")],
            },
        ),
        migrations.RunPython(create_group, delete_group),
    ]
