"""Two years of believable shop history for the demo: products, customers and their orders.

Every order goes through :mod:`shop.services` with an explicit ``at=`` timestamp, and all
events (sign-ups, orders, payments, cancellations, refunds) are replayed in chronological
order, so whatever listens to the shop's signals (the loyalty engine) sees what it would
have seen in real life.

Customer personas:

- **regulars** order every 3-6 weeks for the whole period (the demo login
  ``anna@example.com`` / ``demo1234`` is one of them);
- **lapsed** customers used to order every 3-5 weeks and stopped 6-12 months ago;
- **occasional** buyers order 2-6 times, **one-time** buyers once;
- a few **guest-then-member** customers checked out as guests before registering;
- **browsers** registered and never ordered;
- **guests** check out with an email only, some of them several times.
"""

from __future__ import annotations

import random
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import Any, TextIO

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from . import services
from .models import Order, OrderLine, Product

DEMO_PASSWORD = "demo1234"
DEMO_CUSTOMER_EMAIL = "anna@example.com"
# A regular who stopped ordering a few months ago: sign in as him to see a win-back email work.
DRIFTING_CUSTOMER_EMAIL = "marco@example.com"
CENT = Decimal("0.01")
HISTORY_DAYS = 730

# name, price, colour, description
PRODUCTS: list[tuple[str, str, str, str]] = [
    ("Olio extravergine Taggiasca, 500 ml", "18.50", "#7d8b2f", "Cold-pressed Ligurian olive oil, mild and fruity."),
    ("Aceto balsamico di Modena IGP", "12.90", "#4a2a1f", "Aged in oak barrels; for salads, cheese and strawberries."),
    ("Paccheri di Gragnano, 500 g", "4.20", "#e8cf8f", "Bronze-drawn pasta, slowly dried in Campania."),
    ("Parmigiano Reggiano 24 mesi, 300 g", "9.80", "#f1d27a", "Two years on the shelf, crumbly with salt crystals."),
    ("Pesto alla genovese, 180 g", "6.50", "#4f7a3a", "Basil from Prà, pine nuts, Pecorino and Ligurian oil."),
    ("Crema di tartufo nero, 80 g", "16.90", "#3b3128", "Black summer truffle from Umbria in a silky cream."),
    ("Taralli pugliesi al finocchio", "4.50", "#d9b77e", "Crunchy rings from Apulia with wild fennel seeds."),
    ("Caffè moka, miscela napoletana, 250 g", "8.90", "#5a3a22", "A dark Neapolitan roast for the stovetop pot."),
    ("Limoncello di Sorrento, 50 cl", "19.50", "#f2e14c", "Made from IGP Sorrento lemons; serve ice-cold."),
    ("Panettone artigianale, 1 kg", "32.00", "#c98b3b", "Three days of natural leavening, candied orange peel."),
    ("Pomodorini del Piennolo, 520 g", "6.90", "#c8402f", "Vesuvian cherry tomatoes, sweet and concentrated."),
    ("Miele di castagno, 500 g", "11.50", "#8a5a1c", "Dark, bittersweet chestnut honey from Piedmont."),
    ("Salame Felino IGP", "14.80", "#a6434b", "Slow-cured pork salami from the hills of Parma."),
    ("Riso Carnaroli Acquerello, 500 g", "9.90", "#efe6cf", "Aged one year: the rice Milanese cooks swear by."),
    ("Sapone all'olio d'oliva e lavanda", "5.90", "#9c8ac4", "Cold-process soap with olive oil and lavender."),
    ("Crema mani alla calendula, 75 ml", "9.50", "#f0a53a", "Rich hand cream with organic calendula and shea."),
    ("Olio di mandorle dolci, 100 ml", "11.90", "#ead9b0", "Pure sweet almond oil for skin and hair."),
    ("Shampoo solido al rosmarino", "10.50", "#6f8f72", "Plastic-free shampoo bar with rosemary and nettle."),
    ("Burro labbra al miele", "4.90", "#e6b657", "Lip balm with beeswax and acacia honey."),
    ("Acqua di rose, tonico viso, 200 ml", "14.50", "#e79bb0", "Steam-distilled Damask rose water."),
    ("Crema viso al fico d'India, 50 ml", "34.00", "#b1466b", "Prickly-pear seed oil face cream for dry skin."),
    ("Olio corpo al bergamotto, 200 ml", "24.50", "#b7c94a", "Light body oil with Calabrian bergamot."),
    ("Set regalo: sapone e crema mani", "42.00", "#8c6d9e", "Lavender soap and calendula hand cream in a gift box."),
    ("Cesto regalo gastronomico", "59.00", "#7a4b2a", "Oil, balsamic, pasta, pesto and taralli in a wicker basket."),
]

# The shop's categories: the demo adapter reports the category of each order's largest line.
PANTRY, DELI, DRINKS, SWEETS, BODY, GIFTS = "Pantry", "Deli", "Coffee & drinks", "Sweets", "Body care", "Gifts"
CATEGORIES: dict[str, str] = {
    "Olio extravergine Taggiasca, 500 ml": PANTRY,
    "Aceto balsamico di Modena IGP": PANTRY,
    "Paccheri di Gragnano, 500 g": PANTRY,
    "Parmigiano Reggiano 24 mesi, 300 g": DELI,
    "Pesto alla genovese, 180 g": PANTRY,
    "Crema di tartufo nero, 80 g": DELI,
    "Taralli pugliesi al finocchio": SWEETS,
    "Caffè moka, miscela napoletana, 250 g": DRINKS,
    "Limoncello di Sorrento, 50 cl": DRINKS,
    "Panettone artigianale, 1 kg": SWEETS,
    "Pomodorini del Piennolo, 520 g": PANTRY,
    "Miele di castagno, 500 g": SWEETS,
    "Salame Felino IGP": DELI,
    "Riso Carnaroli Acquerello, 500 g": PANTRY,
    "Sapone all'olio d'oliva e lavanda": BODY,
    "Crema mani alla calendula, 75 ml": BODY,
    "Olio di mandorle dolci, 100 ml": BODY,
    "Shampoo solido al rosmarino": BODY,
    "Burro labbra al miele": BODY,
    "Acqua di rose, tonico viso, 200 ml": BODY,
    "Crema viso al fico d'India, 50 ml": BODY,
    "Olio corpo al bergamotto, 200 ml": BODY,
    "Set regalo: sapone e crema mani": GIFTS,
    "Cesto regalo gastronomico": GIFTS,
}

GERMAN_FIRST = [
    "Lukas", "Jonas", "Felix", "Maximilian", "Paul", "Leon", "Tobias", "Jürgen", "Matthias", "Stefan",
    "Lena", "Marie", "Sophie", "Hannah", "Katharina", "Johanna", "Friederike", "Greta", "Ulrike", "Sabine",
]
GERMAN_LAST = [
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Wagner", "Becker", "Hoffmann", "Schäfer", "Koch",
    "Bauer", "Richter", "Klein", "Wolf", "Neumann", "Zimmermann", "Krüger", "Hartmann", "Lange", "Schulz",
]
ITALIAN_FIRST = [
    "Giulia", "Francesca", "Chiara", "Martina", "Federica", "Elena", "Sofia", "Beatrice", "Alessia", "Valentina",
    "Alessandro", "Lorenzo", "Matteo", "Giuseppe", "Marco", "Paolo", "Davide", "Riccardo", "Niccolò", "Tommaso",
]
ITALIAN_LAST = [
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco",
    "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo", "Lombardi", "Moretti",
]
OTHER_FIRST = ["Emma", "Olivia", "Noah", "Zoé", "Camille", "Inès", "Lucas", "Sanna", "Jan", "Aisha", "Mateo", "Ingrid"]
OTHER_LAST = ["Dubois", "Martin", "Smith", "Jensen", "Novák", "Kowalski", "García", "Silva", "Öztürk", "Lindqvist"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example", "posteo.example", "libero.example"]

REFUND_REASONS = ["Damaged in transit", "Wrong item sent", "Customer changed their mind", "Item out of stock"]

User = get_user_model()


@dataclass
class _Customer:
    persona: str
    first_name: str
    last_name: str
    email: str
    joined: datetime | None = None  # None: a guest, never registered
    favourites: list[int] = field(default_factory=list)
    user: Any = None


@dataclass
class _Plan:
    """One order to place, with everything that will happen to it afterwards."""

    customer: _Customer
    placed: datetime
    items: dict[int, int]
    total: Decimal
    paid: datetime | None = None
    cancelled: datetime | None = None
    refunds: list[tuple[datetime, Decimal | None, str]] = field(default_factory=list)
    order: Order | None = None


def _ascii(text: str) -> str:
    for src, dst in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss"), ("Ä", "Ae"), ("Ö", "Oe"), ("Ü", "Ue")):
        text = text.replace(src, dst)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return text.lower().replace(" ", "")


class _Generator:
    def __init__(self, *, rng: random.Random, now: datetime):
        self.rng = rng
        self.now = now
        self.start = now - timedelta(days=HISTORY_DAYS)
        self.tz = timezone.get_current_timezone()
        self.used_emails: set[str] = set()
        self.used_names: set[tuple[str, str]] = set()
        self.products: list[Product] = []
        self.plans: list[_Plan] = []

    # -- helpers --------------------------------------------------------------------------
    def moment(self, day: date) -> datetime:
        """A plausible shopping time (07:00-23:00 local) on ``day``."""
        minutes = int(self.rng.triangular(7 * 60, 23 * 60, 20 * 60))
        return datetime.combine(day, dtime(minutes // 60, minutes % 60, self.rng.randrange(60)), tzinfo=self.tz)

    def at_offset(self, days: float) -> datetime:
        """A shopping moment ``days`` after the start of the history, never in the future."""
        moment = self.moment((self.start + timedelta(days=days)).astimezone(self.tz).date())
        return min(max(moment, self.start), self.now - timedelta(minutes=30))

    def person(self) -> tuple[str, str]:
        roll = self.rng.random()
        while True:
            if roll < 0.45:
                first, last = self.rng.choice(GERMAN_FIRST), self.rng.choice(GERMAN_LAST)
            elif roll < 0.85:
                first, last = self.rng.choice(ITALIAN_FIRST), self.rng.choice(ITALIAN_LAST)
            else:
                first = self.rng.choice(OTHER_FIRST + GERMAN_FIRST + ITALIAN_FIRST)
                last = self.rng.choice(OTHER_LAST + GERMAN_LAST + ITALIAN_LAST)
            if (first, last) not in self.used_names:
                self.used_names.add((first, last))
                return first, last

    def email_for(self, first: str, last: str) -> str:
        style = self.rng.choice(["{f}.{l}", "{f}{l}", "{i}.{l}", "{f}_{l}", "{l}.{f}"])
        local = style.format(f=_ascii(first), l=_ascii(last), i=_ascii(first)[0])
        email = f"{local}@{self.rng.choice(DOMAINS)}"
        n = 2
        while email in self.used_emails or email in (DEMO_CUSTOMER_EMAIL, DRIFTING_CUSTOMER_EMAIL):
            email = f"{local}{n}@{self.rng.choice(DOMAINS)}"
            n += 1
        self.used_emails.add(email)
        return email

    def customer(self, persona: str, *, registered: bool = True) -> _Customer:
        first, last = self.person()
        customer = _Customer(persona, first, last, self.email_for(first, last))
        customer.favourites = self.rng.sample([p.pk for p in self.products], self.rng.randint(3, 6))
        if registered:
            customer.joined = self.start + timedelta(days=self.rng.uniform(-90, HISTORY_DAYS - 1))
        return customer

    def basket(self, customer: _Customer) -> dict[int, int]:
        items: dict[int, int] = {}
        for _ in range(self.rng.choices([1, 2, 3, 4, 5], weights=[30, 32, 20, 12, 6])[0]):
            pool = customer.favourites if self.rng.random() < 0.7 else [p.pk for p in self.products]
            items[self.rng.choice(pool)] = self.rng.choices([1, 2, 3], weights=[75, 20, 5])[0]
        return items

    # -- orders ---------------------------------------------------------------------------
    def order(self, customer: _Customer, placed: datetime, *, fate: str | None = None) -> _Plan:
        items = self.basket(customer)
        prices = {p.pk: p.price for p in self.products}
        total = sum((prices[pid] * qty for pid, qty in items.items()), Decimal("0.00"))
        plan = _Plan(customer, placed, items, total)
        if customer.joined is not None and customer.joined > placed:
            customer.joined = placed - timedelta(minutes=self.rng.randint(3, 60 * 24 * 20))
        if fate is None:
            fate = self.rng.choices(
                ["paid", "cancel_unpaid", "cancel_paid", "refund_full", "refund_partial", "refund_partial_then_rest"],
                weights=[85, 4, 2, 3, 4, 2],
            )[0]
        if fate == "pending":
            self.plans.append(plan)
            return plan
        if fate == "cancel_unpaid":
            plan.cancelled = placed + timedelta(minutes=self.rng.randint(20, 60 * 48))
            self.plans.append(plan)
            return plan
        plan.paid = placed + timedelta(minutes=self.rng.randint(1, 90), seconds=self.rng.randrange(60))
        if fate == "cancel_paid":
            plan.cancelled = plan.paid + timedelta(minutes=self.rng.randint(30, 60 * 30))
        elif fate.startswith("refund"):
            first = plan.paid + timedelta(days=self.rng.uniform(2, 21))
            reason = self.rng.choice(REFUND_REASONS)
            if fate == "refund_full":
                plan.refunds.append((first, None, reason))
            else:
                plan.refunds.append((first, self.partial_amount(items, prices, total), reason))
                if fate == "refund_partial_then_rest":
                    plan.refunds.append((first + timedelta(days=self.rng.uniform(1, 14)), None, "Goodwill refund"))
        # What has not happened yet by "now" simply has not happened: the order stays pending/paid.
        if plan.paid >= self.now:
            plan.paid, plan.cancelled, plan.refunds = None, None, []
        if plan.cancelled is not None and plan.cancelled >= self.now:
            plan.cancelled = None
        plan.refunds = [refund for refund in plan.refunds if refund[0] < self.now]
        self.plans.append(plan)
        return plan

    def partial_amount(self, items: dict[int, int], prices: dict[int, Decimal], total: Decimal) -> Decimal:
        if len(items) > 1:  # one item sent back
            pid = self.rng.choice(sorted(items))
            return prices[pid] * items[pid]
        share = Decimal(str(self.rng.uniform(0.2, 0.6)))
        return max(CENT, (total * share).quantize(CENT))

    def series(self, customer: _Customer, first: float, last: float, gap: tuple[float, float]) -> int:
        """Orders every ``gap`` days from day ``first`` to day ``last`` of the history."""
        day, count = first, 0
        while day <= last:
            self.order(customer, self.at_offset(day))
            count += 1
            day += self.rng.uniform(*gap)
        return count

    # -- the whole history ------------------------------------------------------------------
    def plan_history(self) -> list[_Customer]:
        rng, customers = self.rng, []
        elapsed = (self.now - self.start).total_seconds() / 86400

        anna = _Customer("regular", "Anna", "Weber", DEMO_CUSTOMER_EMAIL, joined=self.start - timedelta(days=12))
        anna.favourites = [p.pk for p in self.products if "Olio" in p.name or "Pesto" in p.name or "Caff" in p.name]
        self.used_emails.add(anna.email)
        customers.append(anna)
        self.series(anna, rng.uniform(0, 10), elapsed - 1, (21, 42))
        # Something still in the last few days, so her account page shows fresh points.
        self.order(anna, self.now - timedelta(days=rng.uniform(2, 5)), fate="paid")

        for _ in range(9):  # regulars: every 3-6 weeks, the whole time
            customer = self.customer("regular")
            customer.joined = self.start - timedelta(days=rng.uniform(5, 120))
            customers.append(customer)
            self.series(customer, rng.uniform(0, 40), elapsed - 1, (21, 42))

        for _ in range(7):  # lapsed: often, then nothing for the last 6-12 months
            customer = self.customer("lapsed")
            customer.joined = self.start - timedelta(days=rng.uniform(5, 60))
            customers.append(customer)
            stop = elapsed - rng.uniform(190, 360)
            first = rng.uniform(0, 120)
            while self.series(customer, first, stop, (18, 38)) < 6:  # a safety net; rarely needed
                self.plans = [plan for plan in self.plans if plan.customer is not customer]
                first = max(0.0, first - 60)

        # drifting: bought every 3-5 weeks, then stopped 2-4 months ago (not yet lost)
        marco = _Customer("drifting", "Marco", "Bianchi", DRIFTING_CUSTOMER_EMAIL)
        marco.joined = self.start - timedelta(days=30)
        marco.favourites = [p.pk for p in self.products if "Vino" in p.name or "Pasta" in p.name] or [
            p.pk for p in self.products[:4]
        ]
        self.used_emails.add(marco.email)
        drifting = [marco] + [self.customer("drifting") for _ in range(5)]
        for customer in drifting[1:]:
            customer.joined = self.start - timedelta(days=rng.uniform(5, 60))
        for customer in drifting:
            customers.append(customer)
            self.series(customer, rng.uniform(0, 90), elapsed - rng.uniform(75, 120), (21, 35))

        for _ in range(30):  # occasional buyers
            customer = self.customer("occasional")
            customers.append(customer)
            days = sorted(rng.uniform(0, elapsed - 1) for _ in range(rng.randint(2, 6)))
            for day in days:
                self.order(customer, self.at_offset(day))

        for _ in range(32):  # one-time buyers
            customer = self.customer("one-time")
            customers.append(customer)
            self.order(customer, self.at_offset(rng.uniform(0, elapsed - 1)))

        for _ in range(3):  # checked out as guests, registered later with the same email
            guest = self.customer("guest-then-member", registered=False)
            first_day = rng.uniform(30, elapsed - 200)
            for day in sorted(rng.uniform(first_day, first_day + 90) for _ in range(rng.randint(1, 3))):
                self.order(guest, self.at_offset(day), fate="paid")
            guest.joined = self.at_offset(first_day + rng.uniform(100, 150))
            customers.append(guest)
            for day in sorted(rng.uniform(first_day + 160, elapsed - 1) for _ in range(rng.randint(1, 4))):
                self.order(guest, self.at_offset(day))

        for _ in range(4):  # registered, never bought anything
            customers.append(self.customer("browser"))

        for index in range(42):  # guests: most once, some come back with the same email
            guest = self.customer("guest", registered=False)
            visits = rng.randint(2, 5) if index % 4 == 0 else 1
            for day in sorted(rng.uniform(0, elapsed - 1) for _ in range(visits)):
                self.order(guest, self.at_offset(day))
            customers.append(guest)

        # A few orders still awaiting payment, placed in the last two days.
        late_guests = [self.customer("guest", registered=False) for _ in range(2)]
        for customer in [*rng.sample([c for c in customers if c.persona == "occasional"], 2), *late_guests]:
            self.order(customer, self.now - timedelta(minutes=rng.randint(15, 60 * 44)), fate="pending")
        # Anna's order of a week ago: the one the post-purchase survey (7 days after payment) asks about.
        self.order(anna, self.now - timedelta(days=7, hours=3), fate="paid")
        return customers + late_guests


def _summary(*, created: bool) -> dict[str, Any]:
    status = Counter(Order.objects.values_list("status", flat=True))
    orders = Order.objects.all()
    return {
        "created": created,
        "products": Product.objects.count(),
        "customers": User.objects.filter(is_staff=False).count(),
        "orders": sum(status.values()),
        "paid": orders.filter(paid_at__isnull=False).count(),
        "refunded": status[Order.Status.REFUNDED] + status[Order.Status.PARTIALLY_REFUNDED],
        "cancelled": status[Order.Status.CANCELLED],
        "pending": status[Order.Status.PENDING],
        "guests": orders.filter(user__isnull=True).count(),
    }


def load_demo_data(*, seed: int = 7, now: datetime | None = None, stdout: TextIO | None = None) -> dict[str, Any]:
    """Create the demo catalogue, customers and two years of orders, unless there are products.

    Returns a summary (``created`` is False when the shop already had data and nothing was done).
    """
    def say(message: str) -> None:
        if stdout is not None:
            stdout.write(message + "\n")

    if Product.objects.exists():
        _fill_categories()  # a demo database from before products had categories
        summary = _summary(created=False)
        say(f"The shop already has {summary['products']} products: demo data not loaded again.")
        return summary

    started = time.monotonic()
    now = now or timezone.now()
    rng = random.Random(seed)
    staff = User.objects.filter(is_staff=True).order_by("pk").first()
    password = make_password(DEMO_PASSWORD)  # hashing is slow: once, shared by every demo customer

    with transaction.atomic():
        generator = _Generator(rng=rng, now=now)
        for name, price, colour, description in PRODUCTS:
            generator.products.append(
                Product.objects.create(
                    name=name,
                    slug=slugify(name)[:50],
                    price=Decimal(price),
                    colour=colour,
                    description=description,
                    category=CATEGORIES.get(name, ""),
                )
            )
        customers = generator.plan_history()

        # Replay everything in the order it happened: (time, tie-breaker, action).
        events: list[tuple[datetime, int, Any]] = []
        for customer in customers:
            if customer.joined is not None:
                events.append((customer.joined, 0, lambda c=customer: _register(c, password)))
        for plan in generator.plans:
            events.append((plan.placed, 1, lambda p=plan: _place(p)))
            if plan.paid:
                events.append((plan.paid, 2, lambda p=plan: services.mark_paid(order=p.order, at=p.paid)))
            if plan.cancelled:
                events.append((plan.cancelled, 3, lambda p=plan: services.cancel_order(order=p.order, at=p.cancelled)))
            for when, amount, reason in plan.refunds:
                events.append((when, 4, lambda p=plan, w=when, a=amount, r=reason: services.refund_order(
                    order=p.order, amount=a, reason=r, by=staff, at=w)))
        events.sort(key=lambda event: (event[0], event[1]))
        for _when, _kind, action in events:
            action()

    summary = _summary(created=True)
    say("Demo data loaded in {:.1f} s: {}.".format(
        time.monotonic() - started,
        ", ".join(f"{value} {key}" for key, value in summary.items() if key != "created"),
    ))
    return summary


def _fill_categories() -> None:
    for name, category in CATEGORIES.items():
        Product.objects.filter(name=name, category="").update(category=category)


def _register(customer: _Customer, password: str) -> None:
    user = User(
        username=customer.email,
        email=customer.email,
        first_name=customer.first_name,
        last_name=customer.last_name,
        password=password,
        date_joined=customer.joined,
        last_login=None,
    )
    user.save()
    customer.user = user


def _place(plan: _Plan) -> None:
    customer = plan.customer
    # A guest-then-member's early orders are placed before the account exists: guest orders.
    user = customer.user if customer.joined is not None and customer.joined <= plan.placed else None
    plan.order = services.place_order(items=plan.items, user=user, email=customer.email, at=plan.placed)


#: The crowd of past customers that makes the demo big enough for the purchase model (docs/health.md).
CROWD_CUSTOMERS = 650
CROWD_PREFIX = "C"  # order numbers of the crowd's orders: C000001...


def load_demo_crowd(
    *, customers: int = CROWD_CUSTOMERS, seed: int = 7, now: datetime | None = None, stdout: TextIO | None = None
) -> int:
    """Past customers in bulk: ``customers`` registered buyers whose paid orders span the two years of history,
    written straight to the shop's tables (a shop's past, before loyalty was installed: no signals; loyalty
    imports them with its backfill). Each buys at their own rate and, after each order, may stop for good
    (the purchase model's world: most buy once, a few often). Returns the orders created: none when the crowd
    is there already.
    """
    if Order.objects.filter(number__startswith=CROWD_PREFIX).exists():
        return 0
    started = time.monotonic()
    now = now or timezone.now()
    rng = random.Random(seed + 1000)
    generator = _Generator(rng=rng, now=now)
    generator.used_emails.update(User.objects.values_list("email", flat=True))
    products = list(Product.objects.filter(is_active=True).order_by("pk"))
    if not products:
        return 0
    password = make_password(DEMO_PASSWORD)
    elapsed = HISTORY_DAYS - 1.0
    users, plans = [], []  # plans: (user index, paid at, [(product, quantity)])
    for index in range(customers):
        first, last = generator.person()
        email = generator.email_for(first, last)
        start = rng.uniform(0, elapsed - 3)
        rate = rng.gammavariate(0.8, 1 / 30)  # orders per day while active: a mean gap of about 5 weeks
        dropout = rng.betavariate(1.2, 2.5)  # chance of stopping after each order
        day, days = start, []
        while day < elapsed:
            days.append(day)
            if rng.random() < dropout:
                break
            day += rng.expovariate(max(rate, 1e-4))
        joined = generator.start + timedelta(days=start - rng.uniform(0, 20))
        users.append(User(username=email, email=email, first_name=first, last_name=last, password=password,
                          date_joined=joined))  # fmt: skip
        for day in days:
            items = {}
            for _ in range(rng.choices([1, 2, 3], weights=[50, 35, 15])[0]):
                items[rng.choice(products)] = rng.choices([1, 2], weights=[80, 20])[0]
            plans.append((index, generator.at_offset(day), items))
    with transaction.atomic():
        users = User.objects.bulk_create(users)
        orders = []
        for number, (index, placed, items) in enumerate(plans, start=1):
            user = users[index]
            total = sum((product.price * quantity for product, quantity in items.items()), Decimal("0.00"))
            paid = placed + timedelta(minutes=rng.randint(1, 30))
            orders.append(
                Order(
                    number=f"{CROWD_PREFIX}{number:06d}",
                    user=user,
                    email=user.email,
                    currency=settings.SHOP_CURRENCY,
                    status=Order.Status.PAID,
                    total=total,
                    created_at=placed,
                    paid_at=paid,
                )
            )
        orders = Order.objects.bulk_create(orders, batch_size=1000)
        OrderLine.objects.bulk_create(
            [
                OrderLine(order=order, product=product, product_name=product.name, unit_price=product.price,
                          quantity=quantity)  # fmt: skip
                for order, (_index, _placed, items) in zip(orders, plans, strict=True)
                for product, quantity in items.items()
            ],
            batch_size=2000,
        )
    if stdout is not None:
        stdout.write(
            f"Past customers loaded in {time.monotonic() - started:.1f} s: {len(users)} customers, {len(orders)} paid "
            "orders over two years (written as history: loyalty imports them with its backfill).\n"
        )
    return len(orders)
