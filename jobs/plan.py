"""Which EventSub subscriptions a streamer should have, and why not the rest.

Every streamer gets the public types (going live and offline, title and
category, raids in and out), which need no consent. The scoped types need
a consent stored for the channel (``twitch_tokens`` with purpose
``channel``) that holds the type's scope: the streamer's own for most, the
streamer's or a moderator's for follows and shoutouts, whose condition
names that moderator. streamfeed subscribes to the scoped types whose
scopes the connect flow asks for (``app.auth.CHANNEL_SCOPES``); it takes
``channel.cheer`` for bits, since ``channel.bits.use`` repeats every cheer.
"""

from dataclasses import dataclass
from dataclasses import field

from app.auth import CHANNEL_SCOPES
from app.catalogue import BY_TYPE
from app.catalogue import FEED_TYPES
from app.catalogue import FeedType

PUBLIC_TYPES = ("stream.online", "stream.offline", "channel.update")
# Types whose condition names the moderator (or broadcaster) who consented.
MODERATED = ("channel.follow", "channel.shoutout.create", "channel.shoutout.receive")
# Feed types streamfeed leaves out although their scope is asked for.
LEFT_OUT = ("channel.bits.use",)

NOT_CONNECTED = "the streamer has not connected streamfeed"
NOT_ASKED = "streamfeed does not subscribe to this type"


def scopes_of(feed_type: FeedType) -> frozenset[str]:
    """The scopes any one of which authorises the type."""
    if feed_type.scope is None:
        return frozenset()
    return frozenset(part.strip() for part in feed_type.scope.split(" or "))


SCOPED_TYPES = tuple(
    t
    for t in FEED_TYPES
    if t.scope and t.type not in LEFT_OUT and scopes_of(t) & set(CHANNEL_SCOPES)
)
SUBSCRIBED_TYPES = (*PUBLIC_TYPES, "channel.raid", *(t.type for t in SCOPED_TYPES))


@dataclass(frozen=True)
class Want:
    """One subscription a streamer should have."""

    type: str
    version: str
    condition: dict[str, str] = field(hash=False)

    def matches(self, kind: str, condition: dict) -> bool:
        """Whether a subscription of ``kind`` with ``condition`` is this one
        (in any version)."""
        given = {k: str(v) for k, v in (condition or {}).items() if v}
        return kind == self.type and given == self.condition


@dataclass(frozen=True)
class Consent:
    """A stored channel consent: whose it is and the scopes it holds."""

    user_id: str
    scopes: frozenset[str]


def plan(
    streamer_id: str, consents: list[Consent]
) -> tuple[list[Want], dict[str, str]]:
    """The subscriptions ``streamer_id`` should have, and for the scoped
    types it cannot have, the reason (type -> words for the watch page)."""
    broadcaster = {"broadcaster_user_id": streamer_id}
    wants = [Want(t, BY_TYPE[t].version, broadcaster) for t in PUBLIC_TYPES]
    raid = BY_TYPE["channel.raid"].version
    wants.append(Want("channel.raid", raid, {"to_broadcaster_user_id": streamer_id}))
    wants.append(Want("channel.raid", raid, {"from_broadcaster_user_id": streamer_id}))

    # The streamer's own consent first, then moderators'.
    ordered = sorted(consents, key=lambda c: c.user_id != streamer_id)
    missing: dict[str, str] = {}
    for feed_type in SCOPED_TYPES:
        needed = scopes_of(feed_type)
        who = next(
            (
                c.user_id
                for c in ordered
                if (c.user_id == streamer_id or feed_type.type in MODERATED)
                and c.scopes & needed
            ),
            None,
        )
        if who is None:
            missing[feed_type.type] = (
                f"the consent given lacks {feed_type.scope}"
                if any(c.user_id == streamer_id for c in consents)
                else NOT_CONNECTED
            )
            continue
        condition = dict(broadcaster)
        if feed_type.type in MODERATED:
            condition["moderator_user_id"] = who
        wants.append(Want(feed_type.type, feed_type.version, condition))
    return wants, missing
