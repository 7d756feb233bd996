"""Twitch EventSub message signatures.

Twitch signs every webhook request with HMAC-SHA256. The key is the secret
given when the subscription was created; the signed bytes are the message id,
then the message timestamp exactly as sent, then the raw request body, with
nothing in between. The header carries ``sha256=`` and the lowercase hex
digest. See https://dev.twitch.tv/docs/eventsub/handling-webhook-events/.
"""

import hashlib
import hmac

PREFIX = "sha256="


def sign(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """Return the ``Twitch-Eventsub-Message-Signature`` value for a message."""
    message = message_id.encode() + timestamp.encode() + body
    digest = hmac.new(secret.encode("ascii"), message, hashlib.sha256)
    return PREFIX + digest.hexdigest()


def verify_signature(
    secrets: tuple[str, ...],
    message_id: str,
    timestamp: str,
    body: bytes,
    signature: str,
) -> bool:
    """Tell whether ``signature`` was made with one of ``secrets``."""
    return signing_secret(secrets, message_id, timestamp, body, signature) is not None


def signing_secret(
    secrets: tuple[str, ...],
    message_id: str,
    timestamp: str,
    body: bytes,
    signature: str,
) -> int | None:
    """The position in ``secrets`` of the one ``signature`` was made with.

    Every secret is tried, so the time taken does not reveal which one
    matched; each comparison is constant-time. None when none did.
    """
    given = signature.encode("ascii", "replace")
    matched = None
    for index, secret in enumerate(secrets):
        expected = sign(secret, message_id, timestamp, body).encode("ascii")
        if hmac.compare_digest(expected, given) and matched is None:
            matched = index
    return matched


def fingerprint(secret: str) -> str:
    """A short hash naming a secret without showing it."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]
