"""An index for the support agents' daily adjustment total (``services.staff``): their
adjustments by time, with the points, so the sum of a day reads a range of the index (on
PostgreSQL index-only) instead of every adjustment the agent ever made."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0012_member_activity_data"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="pointsentry",
            index=models.Index(
                condition=models.Q(("kind", "adjust")),
                fields=["created_by", "created_at"],
                include=("points",),
                name="loyalty_entry_staff_adjust",
            ),
        ),
    ]
