"""Twitch logins: the one rule for what a streamer's login may look like."""

import re

LOGIN_PATTERN = re.compile(r"[A-Za-z0-9_]{4,25}")
LOGIN_RULE = "a Twitch login is 4 to 25 letters, digits or underscores"


def normalize_login(value: str) -> str:
    """Return the login in lower case, or raise ``ValueError`` saying the rule."""
    login = value.strip()
    if not LOGIN_PATTERN.fullmatch(login):
        raise ValueError(f"{LOGIN_RULE}; got {value!r}")
    return login.lower()
