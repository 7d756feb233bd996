"""One shared set of EventSub subscriptions per streamer, kept with Helix.

``ensure_streamer`` creates what ``jobs.plan`` says a streamer should have
and the database does not show as live: a 202 is recorded as pending (the
challenge then marks it enabled), a 409 adopts the subscription Twitch
already has, a 403 records which consent is missing, and a 429 or 5xx that
outlasts the Helix client's own waits and retries fails the job, which RQ
retries with backoff. A type Twitch revoked with ``authorization_revoked``,
``user_removed`` or ``moderator_removed`` stays stopped until a newer
consent for the channel arrives.

``reconcile`` lists every subscription Twitch has for our callback (all
pages), records their status, forgets rows Twitch no longer has, deletes
and re-creates the failed ones (``notification_failures_exceeded``,
``version_removed``, a failed verification, an outdated version, or a
secret other than EVENTSUB_SECRET), deletes those no one has needed for
UNSUBSCRIBE_GRACE_HOURS, ensures every wanted streamer, and records the
total cost against Twitch's maximum, warning from 80 % of it.

A streamer is *wanted* while a viewer has it as favorite, an operator
pinned it (``cli.py subscribe``), or a live consent for its channel exists.
"""

import logging
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from app.auth import CHANNEL
from app.auth import as_utc
from app.catalogue import BY_TYPE
from app.extensions import db
from app.models import ReconcileRun
from app.models import Streamer
from app.models import Subscription
from app.models import TwitchToken
from app.models import User
from app.store import insert_for
from app.store import parse_optional_timestamp
from app.twitch import TwitchError
from app.twitch import twitch
from jobs.context import job
from jobs.plan import Consent
from jobs.plan import Want
from jobs.plan import plan
from webhooks.signature import fingerprint

logger = logging.getLogger(__name__)

ENABLED = "enabled"
PENDING = "webhook_callback_verification_pending"
LIVE = (ENABLED, PENDING)
# Revoked because a person withdrew or lost something: only a new consent
# brings these back.
STOPPED = ("authorization_revoked", "user_removed", "moderator_removed")
COST_WARNING = 0.8


class HelixRetry(TwitchError):
    """Twitch is rate limiting or failing; the job should be tried again."""


@dataclass
class Outcome:
    """What a job did, for logs and the command line."""

    created: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kept: int = 0
    notes: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.adopted)} adopted, "
            f"{len(self.deleted)} deleted, {self.kept} already there"
        )


def now() -> datetime:
    return datetime.now(UTC)


def callback_url() -> str:
    url = current_app.config.get("EVENTSUB_CALLBACK_URL")
    if not url:
        raise RuntimeError(
            "EVENTSUB_CALLBACK_URL must be set to create EventSub subscriptions"
        )
    return url


# The database side


def record(subscription: dict[str, Any], secret_fingerprint: str | None) -> None:
    """Save what Helix said of a subscription.

    A pending status never overwrites an enabled one (the challenge may
    arrive before the create's answer is recorded), and an unknown secret
    keeps the fingerprint already known. The caller commits.
    """
    condition = subscription.get("condition") or {}
    streamer_id = next(
        (
            str(condition[k])
            for k in (
                "broadcaster_user_id",
                "to_broadcaster_user_id",
                "from_broadcaster_user_id",
                "user_id",
            )
            if condition.get(k)
        ),
        None,
    )
    status = str(subscription.get("status") or "unknown")
    moment = now()
    values = {
        "id": str(subscription["id"]),
        "type": str(subscription.get("type", "")),
        "version": str(subscription.get("version", "")),
        "condition": condition,
        "status": status,
        "streamer_id": streamer_id,
        "cost": subscription.get("cost"),
        "created_at": parse_optional_timestamp(subscription.get("created_at")),
        "updated_at": moment,
        "revoked_at": None if status in LIVE else moment,
        "secret_fingerprint": secret_fingerprint,
    }
    statement = insert_for(db.session, Subscription).values(values)
    excluded = statement.excluded
    keep_enabled = sa.and_(Subscription.status == ENABLED, excluded.status == PENDING)
    statement = statement.on_conflict_do_update(
        index_elements=["id"],
        set_={
            "status": sa.case(
                (keep_enabled, Subscription.status), else_=excluded.status
            ),
            "cost": excluded.cost,
            "version": excluded.version,
            "created_at": sa.func.coalesce(
                excluded.created_at, Subscription.created_at
            ),
            "updated_at": excluded.updated_at,
            "revoked_at": sa.case(
                (keep_enabled, Subscription.revoked_at), else_=excluded.revoked_at
            ),
            "secret_fingerprint": sa.func.coalesce(
                excluded.secret_fingerprint, Subscription.secret_fingerprint
            ),
        },
    )
    db.session.execute(statement)


def consents_for(channel_id: str) -> list[tuple[TwitchToken, Consent]]:
    """The live channel consents stored for a channel."""
    rows = db.session.scalars(
        sa.select(TwitchToken).where(
            TwitchToken.purpose == CHANNEL,
            TwitchToken.channel_id == channel_id,
            TwitchToken.ended_at.is_(None),
        )
    )
    return [
        (row, Consent(row.twitch_user_id, frozenset(row.scopes.split())))
        for row in rows
    ]


def save_streamer(streamer_id: str, login: str | None) -> Streamer:
    """The streamer's row, created if new (two jobs may race to create it)."""
    moment = now()
    statement = (
        insert_for(db.session, Streamer)
        .values(
            id=streamer_id,
            login=login or streamer_id,
            pinned=False,
            notes={},
            updated_at=moment,
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )
    db.session.execute(statement)
    streamer = db.session.get(Streamer, streamer_id)
    if login:
        streamer.login = login
    streamer.updated_at = moment
    return streamer


def wanted_streamers() -> dict[str, str | None]:
    """Every streamer someone needs, id -> login (when known)."""
    wanted: dict[str, str | None] = {}
    for streamer_id, login in db.session.execute(
        sa.select(User.favorite_id, User.favorite_login).where(
            User.favorite_id.is_not(None)
        )
    ):
        wanted[streamer_id] = login
    for streamer_id, login in db.session.execute(
        sa.select(TwitchToken.channel_id, TwitchToken.channel_login).where(
            TwitchToken.purpose == CHANNEL,
            TwitchToken.ended_at.is_(None),
            TwitchToken.channel_id.is_not(None),
        )
    ):
        wanted.setdefault(streamer_id, login)
    for streamer in db.session.scalars(sa.select(Streamer).where(Streamer.pinned)):
        wanted[streamer.id] = streamer.login
    return wanted


def rows_of(streamer_id: str) -> list[Subscription]:
    return list(
        db.session.scalars(
            sa.select(Subscription).where(Subscription.streamer_id == streamer_id)
        )
    )


# Helix


def create(want: Want, outcome: Outcome) -> None:
    """Create one subscription, adopting Twitch's on 409."""
    secret = current_app.config["EVENTSUB_SECRET"]
    body = {
        "type": want.type,
        "version": want.version,
        "condition": want.condition,
        "transport": {
            "method": "webhook",
            "callback": callback_url(),
            "secret": secret,
        },
    }
    response = twitch().create_subscription(body)
    status = response.status_code
    if status == 202:
        data = twitch().json_of(response, "create subscription")["data"][0]
        record(data, fingerprint(secret))
        outcome.created.append(want.type)
        return
    if status == 409:
        adopt(want, outcome)
        return
    if status == 403:
        scope = BY_TYPE[want.type].scope
        logger.info("Subscription %s: Twitch refused it, missing scope", want.type)
        outcome.notes[want.type] = f"Twitch refused it: the consent lacks {scope}"
        return
    if status == 429 or status >= 500:
        raise HelixRetry(f"Twitch create subscription: answered {status}", status)
    message = helix_message(response)
    logger.warning("Subscription %s: Twitch answered %s", want.type, status)
    outcome.notes[want.type] = f"Twitch refused it ({status}: {message})"


def helix_message(response) -> str:
    try:
        return str(response.json().get("message", ""))[:200]
    except ValueError:
        return ""


def adopt(want: Want, outcome: Outcome) -> None:
    """Find the subscription Twitch says already exists, and record it."""
    user_id = next(iter(want.condition.values()))
    callback = callback_url()
    for page in twitch().subscription_pages(user_id=user_id):
        for found in page.get("data") or []:
            same_callback = (found.get("transport") or {}).get("callback") == callback
            if (
                same_callback
                and found.get("version") == want.version
                and want.matches(found.get("type"), found.get("condition"))
                and found.get("status") in LIVE
            ):
                record(found, None)
                outcome.adopted.append(want.type)
                return
    logger.warning("Subscription %s: 409 but Twitch lists no such one", want.type)
    outcome.notes[want.type] = "Twitch says it exists but does not list it"


def delete(row_or_id: Subscription | str, outcome: Outcome) -> None:
    """Delete a subscription at Twitch (gone already is fine) and its row."""
    subscription_id = getattr(row_or_id, "id", row_or_id)
    try:
        twitch().delete_subscription(subscription_id)
    except TwitchError as e:
        if e.status == 429 or (e.status or 500) >= 500:
            raise HelixRetry(str(e), e.status) from e
        raise
    db.session.execute(
        sa.delete(Subscription).where(Subscription.id == subscription_id)
    )
    outcome.deleted.append(subscription_id)


# The jobs


def stopped_for_good(rows: list[Subscription], want: Want, consents) -> bool:
    """Whether Twitch revoked this subscription for a reason only a newer
    consent undoes, and none has come since."""
    revoked = [
        as_utc(r.revoked_at) or as_utc(r.updated_at)
        for r in rows
        if want.matches(r.type, r.condition) and r.status in STOPPED
    ]
    if not revoked:
        return False
    newest_consent = max((as_utc(t.created_at) for t, _ in consents), default=None)
    return newest_consent is None or newest_consent < max(revoked)


@job
def ensure_streamer(streamer_id: str, login: str | None = None) -> str:
    """Make sure a streamer has every subscription it should; idempotent."""
    return str(ensure(streamer_id, login))


def ensure(streamer_id: str, login: str | None = None) -> Outcome:
    save_streamer(streamer_id, login)
    db.session.commit()
    consents = consents_for(streamer_id)
    wants, missing = plan(streamer_id, [c for _, c in consents])
    rows = rows_of(streamer_id)
    # A type Twitch delivers already (a consent given outside streamfeed,
    # or one we no longer hold) is kept, not reported as missing.
    delivered = {r.type for r in rows if r.status in LIVE}
    notes = {kind: why for kind, why in missing.items() if kind not in delivered}
    outcome = Outcome(notes=notes)
    for want in wants:
        live = [
            r
            for r in rows
            if want.matches(r.type, r.condition)
            and r.version == want.version
            and r.status in LIVE
        ]
        if live:
            outcome.kept += 1
            continue
        if stopped_for_good(rows, want, consents):
            continue
        create(want, outcome)
        db.session.commit()
    streamer = db.session.get(Streamer, streamer_id)
    streamer.notes = outcome.notes
    db.session.commit()
    logger.info("Streamer %s: subscriptions ensured: %s", streamer_id, outcome)
    return outcome


@job
def remove_streamer(streamer_id: str) -> str:
    """Delete every subscription of a streamer, at Twitch and here."""
    outcome = Outcome()
    callback = callback_url()
    known = {r.id for r in rows_of(streamer_id)}
    for page in twitch().subscription_pages(user_id=streamer_id):
        for found in page.get("data") or []:
            if (found.get("transport") or {}).get("callback") == callback:
                known.add(found["id"])
    for subscription_id in sorted(known):
        delete(subscription_id, outcome)
        db.session.commit()
    logger.info("Streamer %s: subscriptions removed: %s", streamer_id, outcome)
    return str(outcome)


def logins_of(streamer_ids: set[str]) -> dict[str, str]:
    """The logins of streamers known here by id alone, as Helix has them.

    A subscription found at Twitch names its streamer by id only; without a
    login its streamer would be listed, and looked up, by the id. When
    Twitch cannot be asked, the ids stay for the next run.
    """
    ids = sorted(streamer_ids)
    logins: dict[str, str] = {}
    try:
        for start in range(0, len(ids), 100):
            for user in twitch().get_users(ids=ids[start : start + 100]):
                logins[str(user["id"])] = user["login"]
    except (TwitchError, KeyError) as e:
        logger.warning("Reconcile: could not look up streamer logins (%s)", e)
    return logins


def needs_renewal(found: dict[str, Any], row: Subscription | None) -> bool:
    """Whether a subscription Twitch lists must be deleted and created anew."""
    status = found.get("status")
    if status in STOPPED:
        return False
    if status not in LIVE:
        return True  # failures exceeded, version removed, verification failed
    feed_type = BY_TYPE.get(found.get("type"))
    if feed_type is not None and feed_type.version != found.get("version"):
        return True
    config = current_app.config
    if config.get("EVENTSUB_SECRET_PREVIOUS"):
        current = fingerprint(config["EVENTSUB_SECRET"])
        return row is None or row.secret_fingerprint != current
    return False


@job
def reconcile() -> str:
    """Compare Twitch's subscriptions with ours and repair the difference."""
    config = current_app.config
    callback = callback_url()
    grace = timedelta(hours=config["UNSUBSCRIBE_GRACE_HOURS"])
    outcome = Outcome()

    # Rows are read before Twitch's list, so a row a concurrent job adds
    # meanwhile is never taken for one Twitch has dropped.
    rows = {r.id: r for r in db.session.scalars(sa.select(Subscription))}
    listed = []
    for page in twitch().subscription_pages():
        for found in page.get("data") or []:
            if (found.get("transport") or {}).get("callback") == callback:
                listed.append(found)

    # What Twitch has: record its status; renew what failed or is outdated.
    for found in listed:
        row = rows.get(found["id"])
        record(found, None)
        if needs_renewal(found, row):
            logger.info(
                "Subscription %s (%s): renewing, it was %s",
                found["id"],
                found.get("type"),
                found.get("status"),
            )
            delete(found["id"], outcome)
    db.session.commit()

    # What only we have: Twitch deleted it (a stopped one still explains
    # the watch page, so it stays).
    listed_ids = {found["id"] for found in listed}
    moment = now()
    for row in rows.values():
        if row.id in listed_ids or row.status in STOPPED:
            continue
        logger.info("Subscription %s (%s): gone at Twitch", row.id, row.type)
        db.session.delete(row)
    db.session.commit()

    # Streamers no one needs, past the grace period: delete theirs.
    wanted = wanted_streamers()
    seen = {
        r.streamer_id
        for r in db.session.scalars(sa.select(Subscription))
        if r.streamer_id
    }
    seen |= {s.id for s in db.session.scalars(sa.select(Streamer))}
    # Streamers known by id alone (found only in Twitch's list): by login.
    unnamed = set()
    for streamer_id in seen:
        streamer = db.session.get(Streamer, streamer_id)
        if streamer is None or streamer.login == streamer_id:
            unnamed.add(streamer_id)
    logins = logins_of(unnamed)
    for streamer_id in sorted(seen):
        streamer = db.session.get(Streamer, streamer_id)
        if streamer is None or streamer_id in logins:
            streamer = save_streamer(streamer_id, logins.get(streamer_id))
        if streamer_id in wanted:
            streamer.unwanted_since = None
            continue
        streamer.unwanted_since = as_utc(streamer.unwanted_since) or moment
        if moment - streamer.unwanted_since >= grace:
            for row in rows_of(streamer_id):
                delete(row, outcome)
            logger.info(
                "Streamer %s: no one needs it, subscriptions deleted", streamer_id
            )
        db.session.commit()

    for streamer_id, login in sorted(wanted.items()):
        done = ensure(streamer_id, login)
        outcome.created += done.created
        outcome.adopted += done.adopted
        outcome.kept += done.kept
    new_total = record_costs(outcome)
    return f"{outcome}; {new_total}"


def record_costs(outcome: Outcome) -> str:
    """Keep Twitch's totals, and warn when the cost nears the maximum."""
    page = next(twitch().subscription_pages(status=ENABLED), {})
    total_cost = int(page.get("total_cost") or 0)
    maximum = int(page.get("max_total_cost") or 0)
    db.session.add(
        ReconcileRun(
            finished_at=now(),
            total=int(page.get("total") or 0),
            total_cost=total_cost,
            max_total_cost=maximum,
            created=len(outcome.created),
            deleted=len(outcome.deleted),
        )
    )
    db.session.commit()
    if maximum and total_cost >= COST_WARNING * maximum:
        logger.warning(
            "EventSub cost %s of Twitch's maximum %s: new streamers will soon "
            "get no subscriptions until some are removed or connect streamfeed",
            total_cost,
            maximum,
        )
    else:
        logger.info("EventSub cost %s of %s", total_cost, maximum)
    return f"cost {total_cost} of {maximum}"
