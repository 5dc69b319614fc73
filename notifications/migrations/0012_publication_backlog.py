"""Durable publications: the chunks still to match, and an official's request still to publish."""

import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notifications", "0011_upload_hours")]

    operations = [
        migrations.CreateModel(
            name="PublicationBacklog",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                (
                    "case",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="notifications.case"
                    ),
                ),
                ("date", models.DateField()),
                ("case_visit_ids", models.JSONField()),
                ("created_at", models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
            ],
        ),
        migrations.AddField(
            model_name="case",
            name="publish_requested_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name="case",
            index=models.Index(
                condition=models.Q(("publish_requested_at__isnull", False)),
                fields=["publish_requested_at"],
                name="case_publish_requested",
            ),
        ),
    ]
