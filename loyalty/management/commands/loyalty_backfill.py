from datetime import datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from loyalty.adapters import get_adapter
from loyalty.exceptions import LoyaltyError
from loyalty.services.backfill import backfill_program, orders_backfill


def _date(value: str) -> datetime:
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError as exc:
        raise CommandError(f"--since takes a date as YYYY-MM-DD, not {value!r}.") from exc
    return timezone.make_aware(datetime.combine(day, time.min))


class Command(BaseCommand):
    help = (
        "Import the shop's past paid orders (from the adapter's iter_historical_orders) as purchases, "
        "and with --award-points the points they earned. Safe to rerun: recorded orders are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", help="Only orders paid on or after this day (YYYY-MM-DD).")
        parser.add_argument(
            "--program", help="Slug of the programme (default: DEFAULT_PROGRAM, else the oldest active)."
        )
        parser.add_argument(
            "--award-points",
            action="store_true",
            default=True,
            dest="award_points",
            help="Credit the points each order earned at the base rate, net of refunds (default).",
        )
        parser.add_argument(
            "--no-award-points",
            action="store_false",
            dest="award_points",
            help="Record purchases only (for customer health and KPIs); no ledger entries.",
        )
        parser.add_argument("--chunk-size", type=int, default=5000, help="Orders per transaction (default 5000).")
        parser.add_argument("--after", help="Resume after the order with this reference (printed on every chunk).")

    def handle(self, *args, since=None, program=None, award_points=True, chunk_size=5000, after=None, **options):
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1.")
        try:
            adapter = get_adapter()
        except Exception as exc:
            raise CommandError(f"The loyalty adapter cannot be loaded: {exc}") from exc
        if adapter is None:
            raise CommandError('No loyalty adapter is configured (settings.LOYALTY["ADAPTER"]).')
        try:
            prog = backfill_program(slug=program)
        except LoyaltyError as exc:
            raise CommandError(str(exc)) from exc
        try:
            orders = adapter.iter_historical_orders(since=_date(since) if since else None, after=after)
            orders = iter(orders)  # a generator's own code runs on the first next(): errors surface below
        except NotImplementedError as exc:
            raise CommandError(str(exc)) from exc
        what = "purchases and points" if award_points else "purchases only (no points)"
        self.stdout.write(f"Backfilling {prog.slug}: {what}, {chunk_size} orders per chunk.")

        def progress(chunk):
            rate = chunk.orders / chunk.seconds if chunk.seconds else 0
            self.stdout.write(
                f"chunk {chunk.number}: {chunk.orders} orders, {chunk.imported} imported, {chunk.skipped} skipped, "
                f"{chunk.points} points, {chunk.enrolled} enrolled; {rate:,.0f} orders/s; "
                f"last {chunk.last_reference} (resume with --after {chunk.last_reference})"
            )

        try:
            result = orders_backfill(
                orders=orders, program=prog, award_points=award_points, chunk_size=chunk_size, progress=progress
            )
        except (NotImplementedError, ValueError, LoyaltyError) as exc:
            raise CommandError(str(exc)) from exc
        other = f", {result.other_currency} in another currency than {prog.currency}" if result.other_currency else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Done: {result.orders} orders read, {result.imported} imported, {result.skipped} skipped{other}; "
                f"{result.points} points in {result.entries} ledger entries; {result.enrolled} members enrolled; "
                f"{result.seconds:.1f} s ({result.rate:,.0f} orders/s)."
                + (f" Last order: {result.last_reference}." if result.last_reference else "")
            )
        )
