"""Token counts on the upload backlog, and the hourly figures the sweep keeps for the dashboard."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notifications", "0010_officials_console")]

    operations = [
        migrations.AddField(
            model_name="uploadbacklog",
            name="tokens",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.CreateModel(
            name="UploadHour",
            fields=[
                ("hour", models.DateTimeField(primary_key=True, serialize=False)),
                ("uploads", models.PositiveBigIntegerField(default=0)),
                ("tokens", models.PositiveBigIntegerField(default=0)),
                ("lag_ms_total", models.PositiveBigIntegerField(default=0)),
                ("lag_ms_max", models.PositiveIntegerField(default=0)),
            ],
        ),
    ]
