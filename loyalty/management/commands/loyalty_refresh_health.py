from django.core.management.base import BaseCommand, CommandError

from loyalty.models import Program
from loyalty.services.health import health_fit_model, health_refresh


class Command(BaseCommand):
    help = (
        "Refresh customer health (RFM, purchase model, segments, at risk) for every active programme, "
        "in this process. The nightly beat task does the same through Celery."
    )

    def add_arguments(self, parser):
        parser.add_argument("--program", help="Slug of one programme (default: every active programme).")
        parser.add_argument("--fit", action="store_true", help="Refit the purchase model first (weekly task).")
        parser.add_argument("--chunk-size", type=int, help="Members per chunk (default: HEALTH_CHUNK_SIZE).")

    def handle(self, *args, program=None, fit=False, chunk_size=None, **options):
        programs = Program.objects.filter(is_active=True)
        if program:
            programs = Program.objects.filter(slug=program)
            if not programs.exists():
                raise CommandError(f'No programme with the slug "{program}".')
        for prog in programs:
            if fit:
                model = health_fit_model(program=prog)
                detail = f" ({model.reason})" if model.reason else ""
                self.stdout.write(f"{prog.slug}: purchase model: {model.get_status_display()}{detail}")
            run = health_refresh(program=prog, chunk_size=chunk_size)
            counts = ", ".join(f"{segment} {n}" for segment, n in run.segment_counts.items() if n)
            self.stdout.write(
                self.style.SUCCESS(
                    f"{prog.slug}: {run.members} members scored by {run.scored_by} in {run.seconds:.2f} s; "
                    f"{run.at_risk} at risk. {counts}"
                )
            )
