"""What an EventSub notification means: its streamer, actor, time and summary.

Terms used across streamfeed:

- message id: ``Twitch-Eventsub-Message-Id``; a redelivery keeps it.
- subscription type and version: e.g. ``channel.follow`` and ``2``; stored as
  ``event_type`` and ``event_version``.
- streamer: the broadcaster a subscription is about, taken from the
  subscription's condition (event bodies name it inconsistently).
- actor: the viewer or channel who did the thing, when there is one.
- summary: the one sentence the feed shows.

Everything here is pure: dictionaries in, values out, no database.
"""

import logging
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

logger = logging.getLogger(__name__)

ANONYMOUS = "Anonymous"

# Condition keys naming the streamer, in order of preference. Twitch sends
# the unused raid key as an empty string, so empty values are skipped.
STREAMER_KEYS = (
    "broadcaster_user_id",
    "to_broadcaster_user_id",
    "from_broadcaster_user_id",
    "user_id",
)

# Event field prefixes that may carry the streamer's id, login and name.
# Charity start/progress/stop say ``broadcaster_id`` where others say
# ``broadcaster_user_id``.
PERSON_PREFIXES = (
    "broadcaster_user",
    "to_broadcaster_user",
    "from_broadcaster_user",
    "broadcaster",
    "user",
)
PERSON_KEYS = tuple((f"{prefix}_id", f"{prefix}_login") for prefix in PERSON_PREFIXES)

# Where each type keeps the actor, when it is not the usual ``user_*``.
ACTOR_PREFIXES = {
    "channel.raid": "from_broadcaster_user",
    "channel.shoutout.create": "moderator_user",
    "channel.shoutout.receive": "from_broadcaster_user",
    "channel.ad_break.begin": "requester_user",
    "channel.chat.notification": "chatter_user",
}

# Where each type keeps the number its supporters are ranked by.
AMOUNT_PATHS = {
    "channel.cheer": ("bits",),
    "channel.bits.use": ("bits",),
    "channel.subscription.gift": ("total",),
    "channel.raid": ("viewers",),
    "channel.channel_points_custom_reward_redemption.add": ("reward", "cost"),
    "channel.charity_campaign.donate": ("amount", "value"),
}

# Event fields holding when the event happened, in order of preference.
TIME_KEYS = (
    "followed_at",
    "redeemed_at",
    "banned_at",
    "ended_at",
    "locked_at",
    "started_at",
)


def parse_timestamp(text: str) -> datetime:
    """Read an RFC 3339 UTC time with any fraction width, e.g. Twitch's.

    Raises ``ValueError`` when the text is not a full date and time with a
    time zone.
    """
    if "T" not in text.upper():
        raise ValueError(f"not an RFC 3339 date and time: {text!r}")

    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"no time zone in {text!r}")
    try:
        return moment.astimezone(UTC)
    except OverflowError as e:
        raise ValueError(f"out of range in UTC: {text!r}") from e


def format_timestamp(moment: datetime) -> str:
    """Write a time as RFC 3339 UTC with microseconds and ``Z``.

    SQLite hands back naive datetimes; every stored time is UTC.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elif moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # Every UTC time ends in "+00:00".
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


def find_streamer(subscription: dict, event: dict) -> tuple[str | None, str | None]:
    """Return the streamer's id and login for a notification."""
    condition = subscription.get("condition")
    if not isinstance(condition, dict):
        return None, None
    for key in STREAMER_KEYS:
        value = condition.get(key)
        if value:
            streamer_id = str(value)
            break
    else:
        return None, None

    for id_key, login_key in PERSON_KEYS:
        value = event.get(id_key)
        if value is not None and str(value) == streamer_id:
            login = event.get(login_key)
            return streamer_id, str(login).lower() if login else None
    return streamer_id, None


def find_actor(event_type: str, event: dict) -> tuple[str | None, str | None]:
    """Return the acting user's id and display name, or ``(None, None)``."""
    prefix = ACTOR_PREFIXES.get(event_type, "user")
    if event_type.startswith("channel.charity_campaign.") and event_type != (
        "channel.charity_campaign.donate"
    ):
        return None, None

    user_id = event.get(f"{prefix}_id")
    name = event.get(f"{prefix}_name") or event.get(f"{prefix}_login")
    if user_id is None and name is None:
        return None, None
    return (str(user_id) if user_id is not None else None), name


CLOCK_SKEW = timedelta(minutes=10)


def find_occurred_at(event_type: str, event: dict, fallback: datetime) -> datetime:
    """Return when the event happened, or ``fallback`` when it does not say.

    Progress events only carry the start time of what progresses, so they
    happened when Twitch sent them.
    """
    if event_type.endswith(".progress"):
        return fallback
    for key in TIME_KEYS:
        value = event.get(key)
        if isinstance(value, str):
            try:
                moment = parse_timestamp(value)
            except ValueError:
                continue
            # Nothing happens after Twitch sent word of it; a time far ahead
            # would top the feed and pin the channel's state for good.
            return fallback if moment - fallback > CLOCK_SKEW else moment
    return fallback


def build_rows(
    message_id: str, body: dict, sent_at: datetime, received_at: datetime
) -> list[dict[str, Any]]:
    """Turn a notification body into ``events`` rows (more than one if batched).

    Batched notifications carry ``events`` instead of ``event``; each item
    becomes a row whose message id is suffixed with the item's position, so
    a redelivery of the batch still stores nothing twice.
    """
    subscription = body["subscription"]
    if "event" in body:
        items = [(message_id, body["event"])]
    else:
        items = [
            (f"{message_id}:{index}", item["data"])
            for index, item in enumerate(body["events"])
        ]
    return [
        build_row(item_id, subscription, event, sent_at, received_at)
        for item_id, event in items
    ]


def build_row(
    message_id: str,
    subscription: dict,
    event: dict,
    sent_at: datetime,
    received_at: datetime,
) -> dict[str, Any]:
    """Return one ``events`` row for one event of a subscription."""
    event_type = str(subscription.get("type", ""))
    streamer_id, streamer_name = find_streamer(subscription, event)
    user_id, user_name = find_actor(event_type, event)
    return {
        "message_id": message_id,
        "subscription_id": clip(subscription.get("id"), 100),
        "event_type": clip(event_type, 100),
        "event_version": clip(subscription.get("version"), 20) or "",
        "streamer_id": clip(streamer_id, 40),
        "streamer_name": clip(streamer_name, 40),
        "user_id": clip(user_id, 40),
        "user_name": clip(user_name, 255),
        "occurred_at": find_occurred_at(event_type, event, sent_at),
        "received_at": received_at,
        "amount": find_amount(event_type, event),
        "payload": {"subscription": subscription, "event": event},
    }


MAX_AMOUNT = 2**31


def find_amount(event_type: str, event: dict) -> int | None:
    """Return the number a supporter report adds up, when the type has one.

    Bits for cheers, subs for gifts, viewers for raids, points for custom
    rewards, minor currency units for charity donations.
    """
    path = AMOUNT_PATHS.get(event_type)
    value: Any = event
    for key in path or ():
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        amount = int(value)
    except ValueError:
        return None
    # Report sums are BIGINT: amounts under 2**31 cannot overflow one before
    # four billion events of one supporter, and Twitch's are far smaller.
    return amount if 0 <= amount < MAX_AMOUNT else None


def clip(value: Any, length: int) -> str | None:
    """Fit a value into a column; the payload keeps it whole."""
    return None if value is None else str(value)[:length]


def summarize(event_type: str, event: dict) -> str:
    """Return the sentence the feed shows for one event.

    Unknown types get a generic sentence rather than an error, since Twitch
    adds types and fields over time.
    """
    describe = DESCRIBERS.get(event_type)
    if describe is not None:
        try:
            return describe(event)
        except (
            AttributeError,
            KeyError,
            TypeError,
            ValueError,
            IndexError,
            ArithmeticError,
        ):
            logger.warning(
                "Event %r: fields not as expected, summarized plainly", event_type
            )
    return describe_unknown(event, event_type)


def name_of(event: dict, prefix: str = "user") -> str:
    """Return a display name, or "Anonymous" when Twitch withheld it."""
    if event.get("is_anonymous"):
        return ANONYMOUS
    return event.get(f"{prefix}_name") or event.get(f"{prefix}_login") or ANONYMOUS


def streamer_of(event: dict) -> str:
    return (
        event.get("broadcaster_user_name")
        or event.get("broadcaster_name")
        or event.get("broadcaster_user_login")
        or "The streamer"
    )


def tier_of(event: dict) -> str:
    tier = str(event.get("tier") or "1000")
    return f"Tier {tier[0]}" if tier in {"1000", "2000", "3000"} else f"Tier {tier}"


def plural(count: Any, word: str) -> str:
    """``1 vote``, ``41,800 points``: whole numbers get thousands separators."""
    if isinstance(count, int) and not isinstance(count, bool):
        shown = f"{count:,}"
    else:
        shown = str(count)
    return f"{shown} {word}" if shown == "1" else f"{shown} {word}s"


def with_text(sentence: str, text: Any) -> str:
    """Append a viewer's message to a sentence when there is one."""
    if isinstance(text, dict):
        text = text.get("text")
    return f"{sentence}: {text}" if text else sentence


MAX_DECIMAL_PLACES = 8


def money(amount: dict | None) -> str:
    """Write Twitch's minor-unit money object, e.g. 2500/2/USD as 25.00 USD."""
    amount = amount or {}
    places = int(amount.get("decimal_places") or 0)
    # Currencies use 0 to 4; a wild value would cost seconds and megabytes.
    if not 0 <= places <= MAX_DECIMAL_PLACES:
        raise ValueError(f"decimal_places out of range: {places}")
    value = int(amount.get("value") or 0) / 10**places
    return f"{value:.{places}f} {amount.get('currency', '')}".strip()


def describe_unknown(event: dict, event_type: str) -> str:
    actor = event.get("user_name") or event.get("user_login")
    sentence = f"{event_type} event"
    return f"{sentence} from {actor}" if actor else sentence


def describe_follow(event: dict) -> str:
    return f"{name_of(event)} followed"


def describe_subscribe(event: dict) -> str:
    gift = " (gifted)" if event.get("is_gift") else ""
    return f"{name_of(event)} subscribed at {tier_of(event)}{gift}"


def describe_gift(event: dict) -> str:
    subs = plural(event.get("total", 1), f"{tier_of(event)} sub")
    sentence = f"{name_of(event)} gifted {subs}"
    total = event.get("cumulative_total")
    if total and not event.get("is_anonymous"):
        sentence += f" ({total} gifted in the channel so far)"
    return sentence


def describe_resub(event: dict) -> str:
    months = plural(event.get("cumulative_months", 1), "month")
    sentence = f"{name_of(event)} resubscribed at {tier_of(event)} for {months}"
    return with_text(sentence, event.get("message"))


def describe_sub_end(event: dict) -> str:
    return f"{name_of(event)}'s {tier_of(event)} subscription ended"


def describe_cheer(event: dict) -> str:
    sentence = f"{name_of(event)} cheered {plural(event.get('bits'), 'bit')}"
    return with_text(sentence, event.get("message"))


def describe_bits_use(event: dict) -> str:
    bits = plural(event.get("bits"), "bit")
    if event.get("type") == "power_up":
        power_up = event.get("power_up") or {}
        kind = str(power_up.get("type") or "power_up").replace("_", " ")
        return f"{name_of(event)} used {bits} on a Power-up ({kind})"
    return with_text(f"{name_of(event)} cheered {bits}", event.get("message"))


def describe_raid(event: dict) -> str:
    viewers = plural(event.get("viewers", 0), "viewer")
    raider = name_of(event, "from_broadcaster_user")
    target = name_of(event, "to_broadcaster_user")
    return f"{raider} raided {target} with {viewers}"


def describe_redemption(event: dict) -> str:
    reward = event.get("reward") or {}
    cost = plural(reward.get("cost", 0), "point")
    sentence = f"{name_of(event)} redeemed {reward.get('title', 'a reward')} ({cost})"
    return with_text(sentence, event.get("user_input"))


def describe_redemption_update(event: dict) -> str:
    reward = event.get("reward") or {}
    status = event.get("status", "updated")
    return f"{name_of(event)}'s {reward.get('title', 'reward')} redemption {status}"


def describe_automatic_redemption(event: dict) -> str:
    reward = event.get("reward") or {}
    kind = str(reward.get("type") or "a reward").replace("_", " ")
    cost = reward.get("channel_points", reward.get("cost", 0))
    sentence = f"{name_of(event)} redeemed {kind} ({plural(cost, 'point')})"
    return with_text(sentence, event.get("message"))


def votes_of(choice: dict) -> int:
    return int(choice.get("votes") or 0)


def describe_poll_begin(event: dict) -> str:
    choices = " / ".join(c.get("title", "?") for c in event.get("choices") or [])
    return f"Poll started: {event.get('title')} ({choices})"


def describe_poll_progress(event: dict) -> str:
    tally = ", ".join(
        f"{c.get('title', '?')} ({plural(votes_of(c), 'vote')})"
        for c in event.get("choices") or []
    )
    return f"Poll so far: {event.get('title')}: {tally}"


def describe_poll_end(event: dict) -> str:
    status = event.get("status", "completed")
    if status != "completed":
        return f"Poll {status}: {event.get('title')}"

    winner = max(event.get("choices") or [{}], key=votes_of)
    votes = plural(votes_of(winner), "vote")
    return f"Poll ended: {event.get('title')}: {winner.get('title')} won ({votes})"


def describe_prediction_begin(event: dict) -> str:
    outcomes = " / ".join(o.get("title", "?") for o in event.get("outcomes") or [])
    return f"Prediction started: {event.get('title')} ({outcomes})"


def describe_prediction_progress(event: dict) -> str:
    tally = ", ".join(
        f"{o.get('title', '?')} ({plural(o.get('channel_points') or 0, 'point')})"
        for o in event.get("outcomes") or []
    )
    return f"Prediction so far: {event.get('title')}: {tally}"


def describe_prediction_lock(event: dict) -> str:
    return f"Prediction locked: {event.get('title')}"


def describe_prediction_end(event: dict) -> str:
    if event.get("status") != "resolved":
        return f"Prediction canceled: {event.get('title')}"

    winner = next(
        (
            o.get("title")
            for o in event.get("outcomes") or []
            if o.get("id") == event.get("winning_outcome_id")
        ),
        "?",
    )
    return f"Prediction ended: {event.get('title')}: {winner} won"


def describe_hype_train_begin(event: dict) -> str:
    return f"Hype Train started at level {event.get('level', 1)}"


def describe_hype_train_progress(event: dict) -> str:
    progress = f"{event.get('progress', 0)}/{event.get('goal', '?')}"
    return f"Hype Train at level {event.get('level')} ({progress})"


def describe_hype_train_end(event: dict) -> str:
    return f"Hype Train ended at level {event.get('level')}"


def goal_label(event: dict) -> str:
    kind = str(event.get("type") or "").replace("_", " ")
    return event.get("description") or f"{kind} goal".strip()


def describe_goal(event: dict, verb: str) -> str:
    amounts = f"{event.get('current_amount', 0)}/{event.get('target_amount', '?')}"
    return f"Goal {verb}: {goal_label(event)} ({amounts})"


def describe_goal_end(event: dict) -> str:
    verb = "reached" if event.get("is_achieved") else "ended"
    return describe_goal(event, verb)


def describe_charity_donate(event: dict) -> str:
    amount = money(event.get("amount"))
    return f"{name_of(event)} donated {amount} to {event.get('charity_name')}"


def describe_charity(event: dict, verb: str) -> str:
    raised = money(event.get("current_amount"))
    target = money(event.get("target_amount"))
    return (
        f"Charity campaign {verb}: {event.get('charity_name')} ({raised} of {target})"
    )


def describe_shoutout_create(event: dict) -> str:
    target = name_of(event, "to_broadcaster_user")
    return f"{streamer_of(event)} gave {target} a shoutout"


def describe_shoutout_receive(event: dict) -> str:
    sender = name_of(event, "from_broadcaster_user")
    return f"{sender} gave {streamer_of(event)} a shoutout"


def describe_online(event: dict) -> str:
    kind = event.get("type", "live")
    doing = "went live" if kind == "live" else f"started a {kind.replace('_', ' ')}"
    return f"{streamer_of(event)} {doing}"


def describe_offline(event: dict) -> str:
    return f"{streamer_of(event)} went offline"


def describe_update(event: dict) -> str:
    category = event.get("category_name") or "no category"
    return f"New title: {event.get('title')} (category: {category})"


def describe_ad_break(event: dict) -> str:
    return f"{event.get('duration_seconds')} s ad break started"


def describe_ban(event: dict) -> str:
    by = name_of(event, "moderator_user")
    if event.get("is_permanent", True):
        sentence = f"{name_of(event)} was banned by {by}"
    else:
        sentence = f"{name_of(event)} was timed out by {by}"
    return with_text(sentence, event.get("reason"))


def describe_unban(event: dict) -> str:
    return f"{name_of(event)} was unbanned by {name_of(event, 'moderator_user')}"


def describe_role(event: dict, role: str) -> str:
    return f"{name_of(event)} {role}"


def describe_user_update(event: dict) -> str:
    return f"{name_of(event)} updated their profile"


def describe_chat_notification(event: dict) -> str:
    sentence = event.get("system_message") or f"{name_of(event, 'chatter_user')}"
    return with_text(sentence, event.get("message"))


DESCRIBERS = {
    "channel.follow": describe_follow,
    "channel.subscribe": describe_subscribe,
    "channel.subscription.gift": describe_gift,
    "channel.subscription.message": describe_resub,
    "channel.subscription.end": describe_sub_end,
    "channel.cheer": describe_cheer,
    "channel.bits.use": describe_bits_use,
    "channel.raid": describe_raid,
    "channel.channel_points_custom_reward_redemption.add": describe_redemption,
    "channel.channel_points_custom_reward_redemption.update": (
        describe_redemption_update
    ),
    "channel.channel_points_automatic_reward_redemption.add": (
        describe_automatic_redemption
    ),
    "channel.poll.begin": describe_poll_begin,
    "channel.poll.progress": describe_poll_progress,
    "channel.poll.end": describe_poll_end,
    "channel.prediction.begin": describe_prediction_begin,
    "channel.prediction.progress": describe_prediction_progress,
    "channel.prediction.lock": describe_prediction_lock,
    "channel.prediction.end": describe_prediction_end,
    "channel.hype_train.begin": describe_hype_train_begin,
    "channel.hype_train.progress": describe_hype_train_progress,
    "channel.hype_train.end": describe_hype_train_end,
    "channel.goal.begin": lambda e: describe_goal(e, "started"),
    "channel.goal.progress": lambda e: describe_goal(e, "progress"),
    "channel.goal.end": describe_goal_end,
    "channel.charity_campaign.donate": describe_charity_donate,
    "channel.charity_campaign.start": lambda e: describe_charity(e, "started"),
    "channel.charity_campaign.progress": lambda e: describe_charity(e, "progress"),
    "channel.charity_campaign.stop": lambda e: describe_charity(e, "ended"),
    "channel.shoutout.create": describe_shoutout_create,
    "channel.shoutout.receive": describe_shoutout_receive,
    "stream.online": describe_online,
    "stream.offline": describe_offline,
    "channel.update": describe_update,
    "channel.ad_break.begin": describe_ad_break,
    "channel.ban": describe_ban,
    "channel.unban": describe_unban,
    "channel.moderator.add": lambda e: describe_role(e, "is now a moderator"),
    "channel.moderator.remove": lambda e: describe_role(e, "is no longer a moderator"),
    "channel.vip.add": lambda e: describe_role(e, "is now a VIP"),
    "channel.vip.remove": lambda e: describe_role(e, "is no longer a VIP"),
    "user.update": describe_user_update,
    "channel.chat.notification": describe_chat_notification,
}
