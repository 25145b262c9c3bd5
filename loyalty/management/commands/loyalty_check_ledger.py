from django.core.management.base import BaseCommand, CommandError

from loyalty.models import Member, PointsEntry
from loyalty.selectors import ledger_mismatches


class Command(BaseCommand):
    help = (
        "Verify for every member that balance == sum(ledger) and that unspent credit lots add up "
        "to the (non-negative) balance. Exits non-zero on any mismatch."
    )

    def add_arguments(self, parser):
        parser.add_argument("--show", type=int, default=20, help="How many mismatching members to list.")

    def handle(self, *args, show: int, **options):
        members = Member.objects.count()
        entries = PointsEntry.objects.count()
        mismatches = list(ledger_mismatches()[: max(show, 0) or 1])
        total = ledger_mismatches().count() if len(mismatches) >= max(show, 1) else len(mismatches)
        self.stdout.write(f"Checked {members} members and {entries} ledger entries.")
        if not total:
            self.stdout.write(self.style.SUCCESS("Ledger consistent: every balance equals the sum of its entries."))
            return
        for m in mismatches:
            self.stdout.write(
                self.style.ERROR(
                    f"  member {m.pk} ({m.user}, {m.program.slug}): balance {m.balance}, "
                    f"ledger sum {m.ledger_sum}, unspent lots {m.open_points}"
                )
            )
        raise CommandError(f"{total} member(s) with a ledger mismatch.")
