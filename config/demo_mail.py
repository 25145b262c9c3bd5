"""The demo's mail backend: one line per email on the console, the whole message in a file.

The demo's worker sends a few hundred emails at start (welcome, surveys, campaigns); printing
each as HTML would bury everything else. Each email is written to ``var/emails/`` as an
``.eml`` file (open it in a mail program or read it as text) and announced in one line.
All of them are listed in admin under Loyalty › Emails.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import threading
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend

_counter = itertools.count(1)
_lock = threading.Lock()


def email_dir() -> Path:
    return Path(os.environ.get("DEMO_EMAIL_DIR") or Path(settings.BASE_DIR) / "var" / "emails")


_LINK = re.compile(r"https?://\S+")


def _first_link(body: str) -> str:
    """The email's first link to the shop (a survey, a reward page), so the demo can be followed."""
    site = str(getattr(settings, "LOYALTY", {}).get("SITE_URL", "")).rstrip("/")
    for url in _LINK.findall(body or ""):
        if site and url.startswith(site) and "/unsubscribe/" not in url:
            return url.rstrip(").,")
    return ""


class OneLineEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages) -> int:
        folder = email_dir()
        folder.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            with _lock:
                number = next(_counter)
            path = folder / f"{os.getpid()}-{number:05d}.eml"
            path.write_bytes(message.message().as_bytes())
            to = ", ".join(message.to)
            where = path.relative_to(Path(settings.BASE_DIR))
            link = _first_link(message.body)
            sys.__stdout__.write(f"email  | to {to}: {message.subject}  ({where}{', link ' + link if link else ''})\n")
            sys.__stdout__.flush()
            sent += 1
        return sent
