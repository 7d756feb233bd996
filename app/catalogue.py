"""The EventSub types the feed shows, and what Twitch needs before it sends them.

One place maps every feed type to its version, its label on the watch page,
the group it is filtered under and the OAuth scope our client id must hold
for it. A type without a scope is public: an app token subscribes to it for
any channel. The scopes follow Twitch's subscription types reference
(https://dev.twitch.tv/docs/eventsub/eventsub-subscription-types/); "or"
means either scope is enough.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class FeedType:
    """One subscription type as the feed knows it."""

    type: str
    version: str
    label: str
    group: str
    scope: str | None

    @property
    def public(self) -> bool:
        """Whether an app token can subscribe to it for any channel."""
        return self.scope is None


# Group key -> the heading the watch page files its types under, in order.
GROUPS = {
    "stream": "Stream",
    "follows": "Follows",
    "subs": "Subscriptions",
    "bits": "Bits",
    "raids": "Raids and shoutouts",
    "points": "Channel points",
    "votes": "Polls and predictions",
    "hype": "Hype trains",
    "goals": "Goals and charity",
    "moderation": "Moderation",
    "channel": "Ads, chat notices and profile",
}

SUBS = "channel:read:subscriptions"
POINTS = "channel:read:redemptions or channel:manage:redemptions"
POLLS = "channel:read:polls or channel:manage:polls"
PREDICTIONS = "channel:read:predictions or channel:manage:predictions"
CHARITY = "channel:read:charity"
SHOUTOUTS = "moderator:read:shoutouts or moderator:manage:shoutouts"
VIPS = "channel:read:vips or channel:manage:vips"
# Chat types are authorised by a chatting (bot) user, plus the broadcaster's
# channel:bot when that user is not a moderator of the channel.
CHAT = "user:read:chat and user:bot (chat bot), channel:bot (broadcaster)"

FEED_TYPES = (
    FeedType("stream.online", "1", "Went live", "stream", None),
    FeedType("stream.offline", "1", "Went offline", "stream", None),
    FeedType("channel.update", "2", "Title and category", "stream", None),
    FeedType("channel.follow", "2", "Follows", "follows", "moderator:read:followers"),
    FeedType("channel.subscribe", "1", "New subs", "subs", SUBS),
    FeedType("channel.subscription.gift", "1", "Gift subs", "subs", SUBS),
    FeedType("channel.subscription.message", "1", "Resubs", "subs", SUBS),
    FeedType("channel.subscription.end", "1", "Subs ended", "subs", SUBS),
    FeedType("channel.cheer", "1", "Cheers", "bits", "bits:read"),
    FeedType("channel.bits.use", "1", "Bits used", "bits", "bits:read"),
    FeedType("channel.raid", "1", "Raids", "raids", None),
    FeedType("channel.shoutout.create", "1", "Shoutouts given", "raids", SHOUTOUTS),
    FeedType("channel.shoutout.receive", "1", "Shoutouts received", "raids", SHOUTOUTS),
    FeedType(
        "channel.channel_points_custom_reward_redemption.add",
        "1",
        "Reward redemptions",
        "points",
        POINTS,
    ),
    FeedType(
        "channel.channel_points_custom_reward_redemption.update",
        "1",
        "Redemption updates",
        "points",
        POINTS,
    ),
    FeedType(
        "channel.channel_points_automatic_reward_redemption.add",
        "2",
        "Automatic rewards",
        "points",
        POINTS,
    ),
    FeedType("channel.poll.begin", "1", "Poll started", "votes", POLLS),
    FeedType("channel.poll.progress", "1", "Poll votes", "votes", POLLS),
    FeedType("channel.poll.end", "1", "Poll ended", "votes", POLLS),
    FeedType(
        "channel.prediction.begin", "1", "Prediction started", "votes", PREDICTIONS
    ),
    FeedType(
        "channel.prediction.progress", "1", "Prediction bets", "votes", PREDICTIONS
    ),
    FeedType("channel.prediction.lock", "1", "Prediction locked", "votes", PREDICTIONS),
    FeedType("channel.prediction.end", "1", "Prediction ended", "votes", PREDICTIONS),
    # Version 1 of the hype train types was withdrawn on 2026-01-15.
    FeedType(
        "channel.hype_train.begin",
        "2",
        "Hype Train started",
        "hype",
        "channel:read:hype_train",
    ),
    FeedType(
        "channel.hype_train.progress",
        "2",
        "Hype Train progress",
        "hype",
        "channel:read:hype_train",
    ),
    FeedType(
        "channel.hype_train.end",
        "2",
        "Hype Train ended",
        "hype",
        "channel:read:hype_train",
    ),
    FeedType("channel.goal.begin", "1", "Goal started", "goals", "channel:read:goals"),
    FeedType(
        "channel.goal.progress", "1", "Goal progress", "goals", "channel:read:goals"
    ),
    FeedType("channel.goal.end", "1", "Goal ended", "goals", "channel:read:goals"),
    FeedType(
        "channel.charity_campaign.start", "1", "Charity started", "goals", CHARITY
    ),
    FeedType(
        "channel.charity_campaign.progress", "1", "Charity progress", "goals", CHARITY
    ),
    FeedType(
        "channel.charity_campaign.donate", "1", "Charity donations", "goals", CHARITY
    ),
    FeedType("channel.charity_campaign.stop", "1", "Charity ended", "goals", CHARITY),
    FeedType("channel.ban", "1", "Bans and timeouts", "moderation", "channel:moderate"),
    FeedType("channel.unban", "1", "Unbans", "moderation", "channel:moderate"),
    FeedType(
        "channel.moderator.add",
        "1",
        "Moderators added",
        "moderation",
        "moderation:read",
    ),
    FeedType(
        "channel.moderator.remove",
        "1",
        "Moderators removed",
        "moderation",
        "moderation:read",
    ),
    FeedType("channel.vip.add", "1", "VIPs added", "moderation", VIPS),
    FeedType("channel.vip.remove", "1", "VIPs removed", "moderation", VIPS),
    FeedType("channel.ad_break.begin", "1", "Ad breaks", "channel", "channel:read:ads"),
    FeedType("channel.chat.notification", "1", "Chat notices", "channel", CHAT),
    FeedType("user.update", "1", "Profile updates", "channel", None),
)

BY_TYPE = {feed_type.type: feed_type for feed_type in FEED_TYPES}
PUBLIC_TYPES = tuple(t.type for t in FEED_TYPES if t.public)


def find_feed_type(subscription_type: str) -> FeedType | None:
    """Return what the feed knows of a subscription type, or None."""
    return BY_TYPE.get(subscription_type)


def is_public(subscription_type: str) -> bool:
    """Whether any channel's events of this type reach us without consent."""
    feed_type = BY_TYPE.get(subscription_type)
    return feed_type is not None and feed_type.public
