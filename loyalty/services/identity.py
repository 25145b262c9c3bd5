"""Who is the same person: email addresses compared as the mailbox they reach.

``email_identity(address)`` lower-cases the address, drops a ``+tag`` from the local part
(``anna+ref@example.com`` reaches ``anna@example.com`` at most providers) and, for the providers
in :data:`DOTS_IGNORED` that ignore dots in the local part, drops the dots too and uses the
provider's main domain:

============================  ==============================================
``a.n.n.a+x@googlemail.com``  ``anna@gmail.com``
``Anna+ref@Example.com``      ``anna@example.com``
``anna.smith@example.com``    ``anna.smith@example.com`` (dots kept elsewhere)
============================  ==============================================

Used where one person must not count as two (a referral by oneself, ``services.referrals``)
and where an address must match its owner's account (guest-order claims, ``services.guests``).
It is a comparison key only: addresses are stored and emailed as given.
"""

from __future__ import annotations

#: Providers that deliver ``a.n.n.a@...`` to ``anna@...``, mapped to their main domain.
DOTS_IGNORED: dict[str, str] = {
    "gmail.com": "gmail.com",
    "googlemail.com": "gmail.com",
}


def email_identity(address: str | None) -> str:
    """The mailbox ``address`` reaches, as a comparison key ("" for no address)."""
    address = (address or "").strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return address
    local = local.split("+", 1)[0]
    if domain in DOTS_IGNORED:
        local = local.replace(".", "")
        domain = DOTS_IGNORED[domain]
    return f"{local}@{domain}"
