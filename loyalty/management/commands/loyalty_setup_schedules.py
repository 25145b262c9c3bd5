from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from loyalty.schedules import DEFAULT_SCHEDULES, entry_name, schedules_setup


class Command(BaseCommand):
    help = (
        "Register every loyalty beat task in django-celery-beat with its default schedule "
        "(loyalty.schedules.DEFAULT_SCHEDULES) and sync one entry per campaign. Entries staff "
        "changed are kept unless --reset. Safe to run on every deployment."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Restore the default schedule (and enable) loyalty beat tasks staff changed. "
            "Campaign schedules are never reset.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Show what would change; write nothing.")

    def handle(self, *args, reset: bool, dry_run: bool, **options):
        if not apps.is_installed("django_celery_beat"):
            raise CommandError(
                "django-celery-beat is not installed: put the loyalty tasks in CELERY_BEAT_SCHEDULE instead "
                "(loyalty.schedules.beat_schedule())."
            )
        with transaction.atomic():
            changes = schedules_setup(reset=reset)
            if dry_run:
                transaction.set_rollback(True)  # the exact outcome, then nothing of it is kept

        style = {
            "created": self.style.SUCCESS,
            "reset": self.style.WARNING,
            "updated": self.style.SUCCESS,
            "removed": self.style.WARNING,
            "kept": self.style.NOTICE,
            "renamed": self.style.WARNING,
        }
        prefix = "would be " if dry_run else ""
        for heading, campaign in (("Loyalty beat tasks", False), ("Campaign schedules", True)):
            rows = [change for change in changes if change.campaign is campaign]
            self.stdout.write(f"{heading}:" if rows else f"{heading}: none")
            width = max((len(change.name) for change in rows), default=0)
            for change in rows:
                action = style.get(change.action, str)(f"{prefix}{change.action}".ljust(len(prefix) + 9))
                self.stdout.write(f"  {action} {change.name.ljust(width)}  {change.detail}")

        def summary(campaign: bool) -> str:
            counts: dict[str, int] = {}
            for change in changes:
                if change.campaign is campaign:
                    counts[change.action] = counts.get(change.action, 0) + 1
            return ", ".join(f"{n} {action}" for action, n in counts.items()) or "nothing"

        self.stdout.write(f"Beat tasks: {summary(False)}. Campaigns: {summary(True)}.")

        from_settings = sorted(
            set(getattr(settings, "CELERY_BEAT_SCHEDULE", None) or {}) & {entry_name(t) for t in DEFAULT_SCHEDULES}
        )
        if from_settings:
            self.stdout.write(
                self.style.WARNING(
                    f"Note: CELERY_BEAT_SCHEDULE also defines {len(from_settings)} of these entries "
                    f"({', '.join(from_settings[:3])}{', ...' if len(from_settings) > 3 else ''}). django-celery-beat "
                    "copies settings into the database each time beat starts, so changes staff make to those "
                    "entries in admin last only until then. Remove them from settings to edit them in admin."
                )
            )
        if dry_run:
            self.stdout.write("Dry run: nothing was written.")
