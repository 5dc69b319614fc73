"""The upload-matching backlog: uploads write a row per date, the sweep matches and deletes them."""

import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notifications", "0006_case_publish_permission_health_officials")]

    operations = [
        migrations.CreateModel(
            name="UploadBacklog",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("device_id", models.UUIDField()),
                ("date", models.DateField()),
                ("created_at", models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
            ],
        ),
    ]
