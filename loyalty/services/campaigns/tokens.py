"""Signed tokens in campaign emails (unsubscribe, open pixel, click redirect), salted per purpose."""

from __future__ import annotations

from datetime import timedelta

from django.core import signing

from ...models import Member, Message

UNSUBSCRIBE_SALT = "loyalty.campaigns.unsubscribe"
OPEN_SALT = "loyalty.campaigns.open"
CLICK_SALT = "loyalty.campaigns.click"


# --- signed tokens ---------------------------------------------------------------------------
# Salted per purpose, so an open-pixel token never works as an unsubscribe token. Each expires,
# generously: an unsubscribe link must keep working in an old email for a long time.

#: How long an email's links work after it was sent (an expired link is refused like a bad one).
UNSUBSCRIBE_MAX_AGE = timedelta(days=730)
OPEN_MAX_AGE = timedelta(days=180)
CLICK_MAX_AGE = timedelta(days=365)


def unsubscribe_token(member: Member, *, message: Message | None = None) -> str:
    payload = {"m": member.pk}
    if message is not None:
        payload["g"] = message.pk
    return signing.dumps(payload, salt=UNSUBSCRIBE_SALT)


def unsubscribe_token_load(token: str) -> tuple[Member, Message | None] | None:
    """The member (and message) a token was made for; ``None`` for a bad, tampered or expired token."""
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT, max_age=UNSUBSCRIBE_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired included
        return None
    if not isinstance(data, dict) or not isinstance(data.get("m"), int):
        return None
    member = Member.objects.select_related("program", "user").filter(pk=data["m"]).first()
    if member is None:
        return None
    message_id = data.get("g")
    message = Message.objects.filter(pk=message_id, member=member).first() if isinstance(message_id, int) else None
    return member, message


def tracking_token(message: Message) -> str:
    return signing.dumps(message.pk, salt=OPEN_SALT)


def tracking_token_load(token: str) -> int | None:
    try:
        message_id = signing.loads(token, salt=OPEN_SALT, max_age=OPEN_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired included
        return None
    return message_id if isinstance(message_id, int) else None


def click_token(message: Message, url: str) -> str:
    """Signs the message id and the target together: neither can be swapped."""
    return signing.dumps({"m": message.pk, "u": url}, salt=CLICK_SALT)


def click_token_load(token: str) -> tuple[int, str] | None:
    try:
        data = signing.loads(token, salt=CLICK_SALT, max_age=CLICK_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired included
        return None
    if not isinstance(data, dict) or not isinstance(data.get("m"), int) or not isinstance(data.get("u"), str):
        return None
    return data["m"], data["u"]
