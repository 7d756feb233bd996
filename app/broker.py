"""Wakes the live feeds of a streamer when new events are stored.

In embedded mode everything runs in one process, so a condition variable per
streamer is enough: the webhook rings it after committing, and each open
websocket waits on it, then reads what is new from the database. Reading
from the database by cursor, rather than passing rows around, is what
guarantees a feed neither skips nor repeats an event; the bell only makes
it prompt. A feed also re-reads after a short timeout, which covers events
stored by another process.
"""

import threading


class Bell:
    """A counter that waiters can block on until it moves."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._rings = 0

    def ring(self) -> None:
        with self._condition:
            self._rings += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Block until the count differs from ``seen`` or ``timeout`` passes."""
        with self._condition:
            self._condition.wait_for(lambda: self._rings != seen, timeout)
            return self._rings


class LocalBroker:
    """One bell per streamer login, created on first use."""

    def __init__(self) -> None:
        self._bells: dict[str, Bell] = {}
        self._lock = threading.Lock()

    def bell(self, streamer_name: str) -> Bell:
        with self._lock:
            return self._bells.setdefault(streamer_name, Bell())

    def announce(self, streamer_names: set[str]) -> None:
        """Tell the feeds of these streamers that new events are stored."""
        for name in streamer_names:
            self.bell(name).ring()
