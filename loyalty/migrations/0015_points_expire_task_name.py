"""Data only: the daily expiry task is now ``loyalty.tasks.points_expire`` (it was ``expire_points``).

django-celery-beat rows that name the old task are pointed at the new one, and the default entry
``loyalty-expire-points`` (written by ``loyalty_setup_schedules`` or synced by beat from
``CELERY_BEAT_SCHEDULE``) becomes ``loyalty-points-expire``, keeping its schedule and state. If beat
already created ``loyalty-points-expire`` from the new defaults, that copy is removed, so expiry runs
once a day on the schedule staff kept. Without django-celery-beat there is nothing to do: the old
task name stays registered anyway (for queued messages and schedules kept in settings).
Reversing it renames back.
"""

from django.db import migrations
from django.utils import timezone

OLD_TASK, NEW_TASK = "loyalty.tasks.expire_points", "loyalty.tasks.points_expire"
OLD_ENTRY, NEW_ENTRY = "loyalty-expire-points", "loyalty-points-expire"


def _rename(apps, schema_editor, *, task_from: str, task_to: str, entry_from: str, entry_to: str) -> None:
    try:
        PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
        PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    except LookupError:  # django-celery-beat not installed (or not migrated yet: no rows)
        return
    rows = PeriodicTask.objects.using(schema_editor.connection.alias)
    if not rows.filter(task=task_from).exists():
        return
    if rows.filter(name=entry_from).exists():
        rows.filter(name=entry_to).delete()
        rows.filter(name=entry_from).update(name=entry_to)
    rows.filter(task=task_from).update(task=task_to)
    # Beat reloads its schedule when this timestamp moves (what PeriodicTasks.update_changed does).
    PeriodicTasks.objects.using(schema_editor.connection.alias).update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )


def forwards(apps, schema_editor) -> None:
    _rename(apps, schema_editor, task_from=OLD_TASK, task_to=NEW_TASK, entry_from=OLD_ENTRY, entry_to=NEW_ENTRY)


def backwards(apps, schema_editor) -> None:
    _rename(apps, schema_editor, task_from=NEW_TASK, task_to=OLD_TASK, entry_from=NEW_ENTRY, entry_to=OLD_ENTRY)


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0014_award_paid_function"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=True),
    ]
