"""The health officials' console: advice templates (with defaults in both languages), the
public-list flag of case visits, the two-person rule on large publications, the kill switch.

Health officials may read the advice templates; editing them (edit_advice) and the kill switch
(operate_kill_switch) are rights given to named users, not to the whole group.
"""

import django.db.models.deletion
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations, models


DEFAULT_ADVICE = [
    {
        "risk": "high",
        "text_en": (
            "A confirmed case was at {venue} on {date} at about the same time as you. "
            "Get tested on {test_dates}, even if you feel well, and watch for symptoms for 14 days."
        ),
        "text_zh": "您於{date}到訪{venue}時，有確診者約在同一時間在場。即使沒有病徵，請於{test_dates}接受檢測，並在14天內留意身體狀況。",
        "test_day_offsets": [3, 7],
    },
    {
        "risk": "low",
        "text_en": (
            "A confirmed case visited {venue} on {date}, the day you were there. "
            "Watch for symptoms for 14 days and get tested at once if you feel unwell."
        ),
        "text_zh": "您於{date}到訪{venue}當日，有確診者曾經到訪。請在14天內留意身體狀況，如感不適請立即接受檢測。",
        "test_day_offsets": [],
    },
]


def create_defaults(apps, schema_editor):
    AdviceTemplate = apps.get_model("notifications", "AdviceTemplate")
    for advice in DEFAULT_ADVICE:
        if not AdviceTemplate.objects.filter(risk=advice["risk"]).exists():
            AdviceTemplate.objects.create(version=1, **advice)
    app_config = apps.get_app_config("notifications")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    group = apps.get_model("auth", "Group").objects.filter(name="Health officials").first()
    if group is not None:
        Permission = apps.get_model("auth", "Permission")
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="notifications", codename="view_advicetemplate")
        )


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0008_case_upload"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="DeferredTask",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("task", models.CharField(max_length=200)),
                ("args", models.JSONField(default=list)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.AddField(
            model_name="case",
            name="approved_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="case",
            name="approved_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="case",
            name="estimated_devices",
            field=models.PositiveIntegerField(blank=True, null=True, verbose_name="estimated devices"),
        ),
        migrations.AddField(
            model_name="case",
            name="publish_requested_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="casevisit",
            name="public",
            field=models.BooleanField(default=True, verbose_name="show on the public list"),
        ),
        migrations.AlterField(
            model_name="case",
            name="status",
            field=models.CharField(
                choices=[
                    ("draft", "Draft"),
                    ("awaiting_approval", "Awaiting approval"),
                    ("published", "Published"),
                    ("withdrawn", "Withdrawn"),
                ],
                db_index=True,
                default="draft",
                max_length=20,
            ),
        ),
        migrations.CreateModel(
            name="AdviceTemplate",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "risk",
                    models.CharField(choices=[("high", "High"), ("low", "Low")], max_length=8, verbose_name="risk"),
                ),
                ("version", models.PositiveIntegerField(verbose_name="version")),
                ("text_en", models.TextField(verbose_name="advice (English)")),
                ("text_zh", models.TextField(verbose_name="advice (Chinese)")),
                (
                    "test_day_offsets",
                    models.JSONField(blank=True, default=list, verbose_name="test days after exposure"),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
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
                "ordering": ["risk", "-version"],
                "permissions": [("edit_advice", "Can edit the advice templates")],
            },
        ),
        migrations.AddField(
            model_name="case",
            name="advice_high",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="notifications.advicetemplate",
            ),
        ),
        migrations.AddField(
            model_name="case",
            name="advice_low",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="notifications.advicetemplate",
            ),
        ),
        migrations.CreateModel(
            name="KillSwitch",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, editable=False, primary_key=True, serialize=False)),
                ("active", models.BooleanField(default=False)),
                ("reason", models.CharField(blank=True, max_length=300, verbose_name="reason")),
                ("changed_at", models.DateTimeField(blank=True, null=True)),
                (
                    "changed_by",
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
                "permissions": [("operate_kill_switch", "Can pause and resume all publication matching and pushes")],
            },
        ),
        migrations.AddConstraint(
            model_name="advicetemplate",
            constraint=models.UniqueConstraint(fields=("risk", "version"), name="one_advice_version_per_risk"),
        ),
        migrations.AddIndex(
            model_name="pushdelivery",
            index=models.Index(fields=["created_at"], name="pushdelivery_created"),
        ),
        migrations.RunPython(create_defaults, migrations.RunPython.noop),
    ]
