"""Encryption at rest for the OAuth tokens we keep.

Tokens are sealed with Fernet (AES-128-CBC with an HMAC, from
``cryptography``) under a key derived from SECRET_KEY with HKDF, so no
second secret has to be managed; changing SECRET_KEY makes stored tokens
unreadable, and their owners simply sign in or connect again.
"""

import base64

from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_PURPOSE = b"streamfeed oauth tokens at rest"


class UnreadableToken(ValueError):
    """A stored token that the current key cannot open."""


class TokenBox:
    """Seals and opens token strings with a key derived from a secret."""

    def __init__(self, secret: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_PURPOSE
        ).derive(secret.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as e:
            raise UnreadableToken("stored token cannot be decrypted") from e
