from django.core.management.base import BaseCommand

from shop.demo_data import load_demo_data


class Command(BaseCommand):
    help = (
        "Fill an empty shop with demo products, customers and two years of orders "
        "(does nothing if there are products already). Demo login: anna@example.com / demo1234."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=7, help="Random seed (default: 7); same seed, same shop.")

    def handle(self, *args, seed: int, **options):
        load_demo_data(seed=seed, stdout=self.stdout)
