"""Data only: fill ``Member.orders_count`` and ``last_purchase_at`` (added empty by 0003).

Members who bought before 0003 kept ``orders_count = 0``: they would get the first-purchase
bonus again, and under the inactivity expiry policy count as inactive since they joined.
This computes both from the purchases recorded so far, in one set-based ``UPDATE`` (no loop
over members), for members whose ``orders_count`` is still 0 and who have purchases; members
counted already are left alone, so running it after loyalty counted orders changes nothing.
Every recorded purchase counts, refunded or not, as loyalty does when an order is paid.
Reversing it does nothing (the counts stay).
"""

from django.db import migrations
from django.db.models import Count, Max, OuterRef, Subquery


def fill_activity(apps, schema_editor) -> None:
    Member = apps.get_model("loyalty", "Member")
    Purchase = apps.get_model("loyalty", "Purchase")
    using = schema_editor.connection.alias
    per_member = Purchase.objects.using(using).filter(member_id=OuterRef("pk")).order_by().values("member_id")
    (
        Member.objects.using(using)
        .filter(orders_count=0, pk__in=Purchase.objects.using(using).filter(member__isnull=False).values("member_id"))
        .update(
            orders_count=Subquery(per_member.annotate(n=Count("id")).values("n")[:1]),
            last_purchase_at=Subquery(per_member.annotate(last=Max("occurred_at")).values("last")[:1]),
        )
    )


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0011_reward_codes"),
    ]

    operations = [
        migrations.RunPython(fill_activity, migrations.RunPython.noop, elidable=True),
    ]
