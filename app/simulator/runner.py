"""A background sender that plays Twitch for a webhook receiver.

``Simulator`` first sends the verification challenge of each subscription
it plays, as Twitch does when subscriptions are created: every sample type
for a channel that connected streamfeed, the public ones for the others.
Then it POSTs signed notifications to one URL at an adjustable rate, mixed
like the traffic of a busy channel, and now and then delivers a message a
second time, as Twitch may do. The first thing to happen is that every
channel goes live. A gift is followed by one gifted sub per recipient, and
a poll (prediction, hype train, goal, charity campaign) keeps its id from
begin to end.
"""

import collections
import json
import logging
import math
import random
import threading
import time

import requests

from app.catalogue import is_public
from app.simulator.messages import SAMPLE_TYPES
from app.simulator.messages import STREAMERS
from app.simulator.messages import UNCONNECTED_STREAMERS
from app.simulator.messages import Message
from app.simulator.messages import build_gifted_subs
from app.simulator.messages import build_headers
from app.simulator.messages import build_notification
from app.simulator.messages import build_verification

logger = logging.getLogger(__name__)

MAX_RATE = 1000.0

# How often each type turns up on a lively channel, relative to the others.
# Types not listed get DEFAULT_WEIGHT.
TYPE_WEIGHTS = {
    "channel.follow": 30.0,
    "channel.chat.notification": 12.0,
    "channel.channel_points_custom_reward_redemption.add": 10.0,
    "channel.cheer": 8.0,
    "channel.subscribe": 8.0,
    "channel.subscription.message": 6.0,
    "channel.bits.use": 5.0,
    "channel.channel_points_automatic_reward_redemption.add": 4.0,
    "channel.subscription.gift": 4.0,
    "channel.poll.progress": 3.0,
    "channel.prediction.progress": 3.0,
    "channel.subscription.end": 2.0,
    "channel.hype_train.progress": 1.0,
    "channel.raid": 0.3,
    "channel.hype_train.begin": 0.2,
    "channel.hype_train.end": 0.2,
    "stream.online": 0.1,
    "stream.offline": 0.1,
}
DEFAULT_WEIGHT = 0.5

# Types whose events share the id of what they follow, from begin to end.
THREAD_FAMILIES = (
    "channel.poll",
    "channel.prediction",
    "channel.hype_train",
    "channel.goal",
    "channel.charity_campaign",
)
_THREAD_STARTS = (".begin", ".start")
_THREAD_ENDS = (".end", ".stop")

# Sent messages kept as candidates for a second delivery.
_RECENT_MESSAGES = 50

_FIRST_BACKOFF = 0.1
_MAX_BACKOFF = 5.0


class Simulator:
    """Send signed EventSub notifications to ``url`` from a daemon thread.

    ``rate`` is in events per second (0 pauses); ``streamers`` are the
    channel logins to send for, the two sample channels by default; those
    in ``unconnected`` get public types only. ``redelivery_chance`` is the
    share of sends that repeat an earlier message. Raises ``ValueError``
    for a rate or chance out of range.
    """

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        rate: float = 2.0,
        streamers: tuple[str, ...] | None = None,
        unconnected: tuple[str, ...] = UNCONNECTED_STREAMERS,
        redelivery_chance: float = 0.05,
        timeout: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 0.0 <= redelivery_chance <= 1.0:
            chance = redelivery_chance
            raise ValueError(f"redelivery_chance must be 0 to 1, got {chance!r}")

        self.url = url
        self._secret = secret
        self._rate = _check_rate(rate)
        self._streamers = streamers or tuple(person.login for person in STREAMERS)
        self._types = {
            login: weighted_types(public_only=login in unconnected)
            for login in self._streamers
        }
        self._threads: dict[tuple[str, str], str] = {}
        self._live = False
        self._redelivery_chance = redelivery_chance
        self._timeout = timeout
        self._rng = rng or random.Random()

        self._recent: collections.deque[tuple[Message, int]] = collections.deque(
            maxlen=_RECENT_MESSAGES
        )

        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self._waiting_said = False
        self._backoff = _FIRST_BACKOFF
        self._last_sent = -math.inf
        self.failure: str | None = None

    @property
    def rate(self) -> float:
        """The number of events sent per second."""
        return self._rate

    @property
    def running(self) -> bool:
        """Whether the sending thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def set_rate(self, rate: float) -> None:
        """Change the number of events sent per second; 0 pauses sending."""
        self._rate = _check_rate(rate)
        self._wake.set()

    def start(self) -> None:
        """Start sending from a daemon thread; a simulator starts only once."""
        if self._thread is not None:
            raise RuntimeError("Simulator already started; create a new one")

        self._thread = threading.Thread(
            target=self._run, name="eventsub-simulator", daemon=True
        )
        self._thread.start()
        logger.info("Simulator: sending %g events/s to %s", self._rate, self.url)

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop sending and wait up to ``timeout`` seconds for the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        logger.info("Simulator: stopped")

    def types_for(self, streamer: str) -> tuple[str, ...]:
        """The subscription types the simulator plays for ``streamer``."""
        return self._types[streamer][0]

    def _run(self) -> None:
        """Verify the subscriptions, then send messages until stopped."""
        try:
            with requests.Session() as session:
                if not self._verify_subscriptions(session):
                    return
                while self._wait_for_turn():
                    for message, retry in self._next_deliveries():
                        self._deliver(session, message, retry)
        except Exception:
            # The thread would otherwise end without a word in the app's log.
            logger.exception("Simulator: stopped by an unexpected error")

    def _wait_for_turn(self) -> bool:
        """Sleep until the next message is due; return False once stopping."""
        while not self._stopping.is_set():
            self._wake.clear()
            delay = None
            if self._rate > 0:
                delay = self._last_sent + 1 / self._rate - time.monotonic()
                if delay <= 0:
                    self._last_sent = time.monotonic()
                    return True

            # set_rate() and stop() cut the wait short.
            self._wake.wait(delay)
        return False

    def _verify_subscriptions(self, session) -> bool:
        """Send each subscription's challenge; return False once stopping."""
        for streamer in self._streamers:
            for subscription_type in self.types_for(streamer):
                message = build_verification(subscription_type, streamer)
                if not self._challenge(session, message):
                    return False
            logger.info(
                "Simulator: %d subscriptions of %s verified",
                len(self.types_for(streamer)),
                streamer,
            )
        return True

    def _challenge(self, session, message: Message) -> bool:
        """Deliver one challenge, waiting for the receiver to come up."""
        challenge = json.loads(message.body)["challenge"]
        while not self._stopping.is_set():
            try:
                response = self._post(session, message, 0)
            except requests.ConnectionError as e:
                self._wait_for_server(e)
                continue
            except requests.RequestException as e:
                logger.warning(
                    "EventSub %s: challenge failed (%s)",
                    message.message_id,
                    type(e).__name__,
                )
                return True

            self._note_connected()
            if response.status_code == 403:
                # Every later message would be refused the same way.
                self._fail(
                    f"{self.url} refused the signature of a challenge (403): "
                    "the secret is not the receiver's EVENTSUB_SECRET"
                )
                return False
            if response.status_code != 200 or response.text != challenge:
                logger.warning(
                    "EventSub %s: %s challenge not echoed, status %d",
                    message.message_id,
                    message.subscription_type,
                    response.status_code,
                )
            return True
        return False

    def _next_deliveries(self) -> list[tuple[Message, int]]:
        """Pick a recent message to deliver again, or build a new happening.

        A gift comes with the gifted subs Twitch sends right after it.
        """
        if not self._live:
            self._live = True
            return self._go_live()
        if self._recent and self._rng.random() < self._redelivery_chance:
            message, retry = self._rng.choice(self._recent)
            return [(message, retry + 1)]

        streamer = self._rng.choice(self._streamers)
        types, weights = self._types[streamer]
        message = self._build(self._rng.choices(types, weights)[0], streamer)
        if message.subscription_type != "channel.subscription.gift":
            return [(message, 0)]
        gifted = build_gifted_subs(message, self._rng)
        return [(message, 0), *((sub, 0) for sub in gifted)]

    def _go_live(self) -> list[tuple[Message, int]]:
        """Start every channel's stream, so a watch page opens on a live one."""
        return [
            (build_notification(subscription_type, streamer, rng=self._rng), 0)
            for streamer in self._streamers
            for subscription_type in ("stream.online", "channel.update")
        ]

    def _build(self, subscription_type: str, streamer: str) -> Message:
        """Build a notification, in the thread of its poll, goal and so on."""
        family = thread_family(subscription_type)
        if family is None:
            return build_notification(subscription_type, streamer, rng=self._rng)

        key = (streamer, family)
        if subscription_type.endswith(_THREAD_STARTS):
            self._threads.pop(key, None)
        message = build_notification(
            subscription_type, streamer, rng=self._rng, event_id=self._threads.get(key)
        )

        if subscription_type.endswith(_THREAD_ENDS):
            self._threads.pop(key, None)
        else:
            self._threads[key] = json.loads(message.body)["event"]["id"]
        return message

    def _post(self, session, message: Message, retry: int):
        headers = build_headers(message, self._secret, retry=retry)
        # Twitch does not follow redirects from a callback, so neither do we.
        return session.post(
            self.url,
            data=message.body,
            headers=headers,
            timeout=self._timeout,
            allow_redirects=False,
        )

    def _deliver(self, session, message: Message, retry: int) -> None:
        """POST one message, signed afresh, and log how it went."""
        try:
            response = self._post(session, message, retry)
        except requests.ConnectionError as e:
            self._wait_for_server(e)
            return
        except requests.RequestException as e:
            logger.warning(
                "EventSub %s: delivery failed (%s)",
                message.message_id,
                type(e).__name__,
            )
            return

        self._note_connected()
        self._record(message, retry, response.status_code)

    def _record(self, message: Message, retry: int, status: int) -> None:
        """Log the answer, and keep delivered messages for a redelivery."""
        if not 200 <= status < 300:
            logger.warning(
                "EventSub %s: %s refused with status %d",
                message.message_id,
                message.subscription_type,
                status,
            )
            return

        self._recent.append((message, retry))
        logger.debug(
            "EventSub %s: %s delivered (retry %d), status %d",
            message.message_id,
            message.subscription_type,
            retry,
            status,
        )

    def _fail(self, reason: str) -> None:
        """Stop sending for good, keeping why for whoever started us."""
        self.failure = reason
        logger.error("Simulator: stopped: %s", reason)

    def _wait_for_server(self, error: requests.ConnectionError) -> None:
        """Back off after a refused connection, quietly while starting up."""
        if self._connected:
            logger.warning("Simulator: lost the connection to %s", self.url)
            self._connected = False
        elif not self._waiting_said:
            self._waiting_said = True
            logger.info("Simulator: waiting for %s to answer", self.url)
        else:
            logger.debug(
                "Simulator: %s not reachable yet (%s), next try in %.1f s",
                self.url,
                type(error).__name__,
                self._backoff,
            )

        self._stopping.wait(self._backoff)
        self._backoff = min(self._backoff * 2, _MAX_BACKOFF)

    def _note_connected(self) -> None:
        """Log once when the receiver answers, and reset the backoff."""
        self._backoff = _FIRST_BACKOFF
        if not self._connected:
            self._connected = True
            logger.info("Simulator: connected to %s", self.url)


def weighted_types(public_only: bool) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Return the sample types to play, and how often each turns up."""
    types = tuple(name for name in SAMPLE_TYPES if is_public(name) or not public_only)
    return types, tuple(TYPE_WEIGHTS.get(name, DEFAULT_WEIGHT) for name in types)


def thread_family(subscription_type: str) -> str | None:
    """Return the family whose events share an id, e.g. ``channel.poll``."""
    family = subscription_type.rpartition(".")[0]
    if family not in THREAD_FAMILIES or subscription_type.endswith(".donate"):
        return None
    return family


def _check_rate(rate: float) -> float:
    """Return ``rate`` as a float, or raise ``ValueError`` if out of range."""
    if not 0.0 <= rate <= MAX_RATE:
        accepted = f"from 0 to {MAX_RATE:g} events per second"
        raise ValueError(f"rate must be {accepted}, got {rate!r}")
    return float(rate)
