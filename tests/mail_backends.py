"""Mail backends for the outbox's fault tests (configured through ``EMAIL_BACKEND``)."""

import os
import time

from django.core.mail.backends.base import BaseEmailBackend


class SlowFileBackend(BaseEmailBackend):
    """A mail server that takes ``TEST_MAIL_DELAY`` seconds per email, then records it: one
    line (recipient and subject) appended to ``TEST_MAIL_FILE``. Works across processes, so a
    test can count what a worker it killed had sent."""

    def send_messages(self, email_messages) -> int:
        delay = float(os.environ.get("TEST_MAIL_DELAY", "0"))
        for message in email_messages:
            time.sleep(delay)  # the SMTP conversation: a kill in here sends nothing
            with open(os.environ["TEST_MAIL_FILE"], "a") as out:
                out.write(f"{message.to[0]}\t{message.subject}\n")
        return len(email_messages)
