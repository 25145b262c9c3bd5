"""The German and Italian catalogues are complete, well-formed and compiled; pages render translated.

How the catalogues are made and updated: docs/translations.md. The .po files are read with the
small parser below (no polib dependency); the committed .mo files are read with the standard
library's ``gettext`` and must hold exactly what the .po files say (a compiled file from an older
.po fails here, whatever the files' timestamps, which git does not keep).
"""

from __future__ import annotations

import gettext
import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from tests.factories import ProductFactory, UserFactory

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ["de", "it"]
# Each catalogue's directory: an app's own locale/ (reusable with the app), and the project's
# locale/ for templates/ (listed in settings.LOCALE_PATHS).
CATALOGUES = {"loyalty": ROOT / "loyalty" / "locale", "shop": ROOT / "shop" / "locale", "project": ROOT / "locale"}
PO_FILES = [
    pytest.param(directory / lang / "LC_MESSAGES" / "django.po", id=f"{name}-{lang}")
    for name, directory in CATALOGUES.items()
    for lang in LANGUAGES
]


# --- a small .po reader ---------------------------------------------------------------

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _unquote(text: str) -> str:
    assert text.startswith('"') and text.endswith('"'), text
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), text[1:-1])


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False
    line: int = 0

    @property
    def is_header(self) -> bool:
        return self.msgid == "" and self.msgctxt is None

    def __str__(self) -> str:
        return f"line {self.line}: {self.msgid!r}"


def read_po(path: Path) -> list[Entry]:
    entries: list[Entry] = []
    entry, key = None, None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            entry, key = None, None
            continue
        if entry is None:
            entry = Entry(line=number)
            entries.append(entry)
        if line.startswith("#~"):
            entry.obsolete = True
        elif line.startswith("#,"):
            entry.flags |= {flag.strip() for flag in line[2:].split(",") if flag.strip()}
        elif line.startswith("#"):
            continue
        elif match := re.match(r"^(msgctxt|msgid_plural|msgid|msgstr)(?:\[(\d+)\])?\s+(\".*\")$", line):
            keyword, index, value = match.groups()
            key = (keyword, int(index or 0))
            _append(entry, key, _unquote(value), start=True)
        elif line.startswith('"') and key is not None:
            _append(entry, key, _unquote(line), start=False)
        else:
            raise AssertionError(f"{path}:{number}: cannot read {raw!r}")
    return [e for e in entries if not e.obsolete]


def _append(entry: Entry, key: tuple[str, int], value: str, *, start: bool) -> None:
    keyword, index = key
    if keyword == "msgstr":
        entry.msgstr[index] = (entry.msgstr.get(index, "") if not start else "") + value
    else:
        setattr(entry, keyword, (getattr(entry, keyword) or "" if not start else "") + value)


def messages(path: Path) -> list[Entry]:
    return [e for e in read_po(path) if not e.is_header]


# --- placeholders -------------------------------------------------------------------------

_PERCENT = re.compile(r"%(?:\((?P<name>[^)]*)\))?[-+ #0]*(?:\d+|\*)?(?:\.\d+)?(?P<type>[diouxXeEfFgGcrsa%])")
_BRACES = re.compile(r"\{(\w*)(?:![rsa])?(?::[^{}]*)?\}")
_TAGS = re.compile(r"</?([a-zA-Z][a-zA-Z0-9]*)\b")


def placeholders(text: str, *, python_format: bool, brace_format: bool) -> list[str]:
    """What must survive translation: %-placeholders (named: as a set; positional: in order),
    str.format() fields, and HTML tags."""
    found: list[str] = []
    if python_format:
        for match in _PERCENT.finditer(text):
            if match.group("type") == "%":
                continue
            found.append(f"%({match.group('name')})" if match.group("name") is not None else f"%{match.group('type')}")
    if brace_format or "{}" in text:
        found += [f"{{{name}}}" for name in _BRACES.findall(text)]
    found += [f"<{tag.lower()}>" for tag in _TAGS.findall(text)]
    return found


def _found(text: str, *, python_format: bool, brace_format: bool) -> list[str]:
    return _normalised(placeholders(text, python_format=python_format, brace_format=brace_format))


def _normalised(items: list[str]) -> list[str]:
    # Named placeholders may move; positional ones and {} fields must keep their order.
    named = sorted(i for i in items if i.startswith("%(") or i.startswith("<") or (i.startswith("{") and i != "{}"))
    ordered = [i for i in items if i not in named]
    return named + ordered


# --- the catalogues -----------------------------------------------------------------------


def test_every_catalogue_exists_for_every_language():
    for name, directory in CATALOGUES.items():
        for lang in LANGUAGES:
            assert (directory / lang / "LC_MESSAGES" / "django.po").is_file(), f"{name}: no {lang} catalogue"
    assert [code for code, _ in settings.LANGUAGES] == ["en", *LANGUAGES]
    assert ROOT / "locale" in [Path(p) for p in settings.LOCALE_PATHS]


@pytest.mark.parametrize("po", PO_FILES)
def test_header_is_final(po):
    header = next(e for e in read_po(po) if e.is_header)
    lang = po.parent.parent.name
    assert "fuzzy" not in header.flags, f"{po}: the header is still marked fuzzy"
    assert f"Language: {lang}\n" in header.msgstr[0]
    assert "charset=UTF-8" in header.msgstr[0]
    assert "Plural-Forms: nplurals=2; plural=(n != 1);" in header.msgstr[0]


@pytest.mark.parametrize("po", PO_FILES)
def test_every_message_is_translated(po):
    entries = messages(po)
    assert entries, f"{po} has no messages"
    fuzzy = [str(e) for e in entries if "fuzzy" in e.flags]
    empty = [str(e) for e in entries if not e.msgstr or not all(e.msgstr.values())]
    assert not fuzzy, f"{po}: {len(fuzzy)} fuzzy entries (check them, then drop the flag):\n" + "\n".join(fuzzy)
    assert not empty, f"{po}: {len(empty)} untranslated entries (see docs/translations.md):\n" + "\n".join(empty)


@pytest.mark.parametrize("po", PO_FILES)
def test_placeholders_survive_translation(po):
    problems = []
    for e in messages(po):
        found = partial(_found, python_format="python-format" in e.flags, brace_format="python-brace-format" in e.flags)
        if e.msgid_plural is None:
            expected = {0: found(e.msgid)}
        else:
            # msgstr[0] is the singular: it may drop the count ("one item"), never add anything;
            # the other forms carry what msgid_plural carries.
            expected = {i: found(e.msgid_plural) for i in e.msgstr}
        for index, text in e.msgstr.items():
            if not text:
                continue
            got = found(text)
            if e.msgid_plural is not None and index == 0:
                allowed = found(e.msgid_plural) + found(e.msgid)
                if any(item not in allowed for item in got):
                    problems.append(f"{e} msgstr[0]: {got} not within {allowed}")
            elif got != expected[index]:
                problems.append(f"{e} msgstr[{index}]: {got} != {expected[index]}")
    assert not problems, f"{po}: placeholders or tags differ:\n" + "\n".join(problems)


@pytest.mark.parametrize("po", PO_FILES)
def test_compiled_catalogue_matches_the_po_file(po):
    """The committed .mo holds exactly the .po's translations (recompile with compilemessages)."""
    mo = po.with_suffix(".mo")
    assert mo.is_file(), f"{mo} is missing: run compilemessages (docs/translations.md)"
    with mo.open("rb") as handle:
        catalog = gettext.GNUTranslations(handle)._catalog
    stale = []
    compiled_entries = [e for e in messages(po) if "fuzzy" not in e.flags and all(e.msgstr.values())]
    for e in compiled_entries:  # msgfmt leaves out untranslated and fuzzy entries
        key = e.msgid if e.msgctxt is None else f"{e.msgctxt}\x04{e.msgid}"
        if e.msgid_plural is None:
            if catalog.get(key) != e.msgstr[0]:
                stale.append(str(e))
        elif any(catalog.get((key, i)) != text for i, text in e.msgstr.items()):
            stale.append(str(e))
    compiled = {k if isinstance(k, str) else k[0] for k in catalog if k != ""}
    extra = compiled - {e.msgid if e.msgctxt is None else f"{e.msgctxt}\x04{e.msgid}" for e in compiled_entries}
    assert not stale and not extra, (
        f"{mo} is older than {po.name}: {len(stale)} changed, {len(extra)} removed entries; run compilemessages.\n"
        + "\n".join(stale[:20] + sorted(extra)[:20])
    )


def test_the_placeholder_reader_itself():
    assert placeholders("%(points)d pts, %(name)s and 100%%", python_format=True, brace_format=False) == [
        "%(points)",
        "%(name)",
    ]
    assert placeholders("{} of {} <strong>x</strong>", python_format=False, brace_format=False) == [
        "{}",
        "{}",
        "<strong>",
        "<strong>",
    ]


# --- pages in German and Italian ------------------------------------------------------------


@pytest.fixture
def olive_oil(db):
    return ProductFactory(name="Olio extravergine", slug="olio", price=Decimal("1234.50"))


def _get(client, url, lang):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize(
    ("lang", "words", "price"),
    [
        ("de", ["Unsere Produkte", "In den Warenkorb", "Warenkorb", "Sprache wechseln"], "1.234,50\u00a0€"),
        ("it", ["I nostri prodotti", "Aggiungi al carrello", "Carrello", "Cambia lingua"], "1.234,50\u00a0€"),
        ("en", ["Our products", "Add to cart", "Cart", "Change language"], "€1,234.50"),
    ],
)
def test_shop_home_is_translated_and_prices_are_localised(client, olive_oil, lang, words, price):
    page = _get(client, reverse("shop:product_list"), lang)
    assert f'<html lang="{lang}">' in page
    for word in words:
        assert word in page, f"{word!r} missing from the {lang} home page"
    assert price in page


@pytest.mark.parametrize(
    ("lang", "words"),
    [("de", ["Mein Konto", "Ihre Bestellungen", "Abmelden"]), ("it", ["Il mio account", "I tuoi ordini", "Esci"])],
)
def test_account_page_is_translated(db, client, lang, words):
    client.force_login(UserFactory(email="lena@example.com", first_name="Lena"))
    page = _get(client, reverse("shop:account"), lang)
    for word in words:
        assert word in page, f"{word!r} missing from the {lang} account page"


def test_accept_language_picks_the_language_and_the_switcher_remembers_a_choice(client, olive_oil):
    page = client.get(reverse("shop:product_list"), HTTP_ACCEPT_LANGUAGE="it-IT,it;q=0.9").content.decode()
    assert "I nostri prodotti" in page and "1.234,50\u00a0€" in page

    # The switcher is a plain form: no JavaScript needed.
    assert 'action="/i18n/setlang/"' in page and '<label for="language-select">' in page
    response = client.post(reverse("set_language"), {"language": "de", "next": reverse("shop:cart")})
    assert response.status_code == 302 and response["Location"] == reverse("shop:cart")
    cart = client.get(reverse("shop:cart"), HTTP_ACCEPT_LANGUAGE="it").content.decode()
    assert "Ihr Warenkorb" in cart and '<option value="de" lang="de" selected>Deutsch</option>' in cart


def test_form_errors_and_messages_are_translated(client, olive_oil):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "de"
    response = client.post(reverse("shop:cart_add"), {"product": olive_oil.pk, "quantity": 0}, follow=True)
    assert "Bitte geben Sie eine Menge zwischen 1 und 99 ein." in response.content.decode()
    response = client.post(reverse("shop:cart_add"), {"product": olive_oil.pk, "quantity": 2}, follow=True)
    assert "2 × Olio extravergine wurden in Ihren Warenkorb gelegt." in response.content.decode()
    with translation.override("it"):
        from shop.templatetags.shop_tags import money

        assert money(Decimal("-2"), "EUR") == "−2,00\u00a0€"
        assert money(Decimal("3.456"), "CHF") == "3,46 CHF"


def test_guest_checkout_login_link_keeps_the_way_back(client, olive_oil):
    client.post(reverse("shop:cart_add"), {"product": olive_oil.pk, "quantity": 1})
    page = _get(client, reverse("shop:checkout"), "de")
    assert f'href="{reverse("shop:login")}?next=/checkout/">Melden Sie sich an</a>' in page
