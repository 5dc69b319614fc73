"""Case uploads (PROTOCOL §6): one-time upload codes, and where a case visit came from and
whether it was reviewed. Health officials may issue (add), revoke (change) and see codes."""

import django.db.models.deletion
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations, models

GROUP = "Health officials"
CODENAMES = ["view_caseuploadcode", "add_caseuploadcode", "change_caseuploadcode"]


def grant_officials(apps, schema_editor):
    # Permissions are normally created after all migrations; make sure these exist now.
    app_config = apps.get_app_config("notifications")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    group.permissions.add(*Permission.objects.filter(content_type__app_label="notifications", codename__in=CODENAMES))


def revoke_officials(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    for group in apps.get_model("auth", "Group").objects.filter(name=GROUP):
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="notifications", codename__in=CODENAMES)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0007_upload_backlog"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AddField(
            model_name="casevisit",
            name="review",
            field=models.CharField(
                choices=[("proposed", "Proposed, awaiting review"), ("accepted", "Accepted")],
                default="accepted",
                max_length=16,
                verbose_name="review",
            ),
        ),
        migrations.AddField(
            model_name="casevisit",
            name="source",
            field=models.CharField(
                choices=[("interview", "Interview"), ("csv", "CSV import"), ("upload", "The case's upload")],
                default="interview",
                max_length=16,
                verbose_name="source",
            ),
        ),
        migrations.CreateModel(
            name="CaseUploadCode",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("code_hash", models.BinaryField(max_length=32, unique=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("expires_at", models.DateTimeField(verbose_name="expires")),
                ("used_at", models.DateTimeField(blank=True, null=True, verbose_name="used")),
                ("revoked_at", models.DateTimeField(blank=True, null=True, verbose_name="revoked")),
                (
                    "case",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="upload_codes",
                        to="notifications.case",
                    ),
                ),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "case upload code",
                "ordering": ["-created_at"],
            },
        ),
        migrations.RunPython(grant_officials, revoke_officials),
    ]
