"""``cli.py explain MESSAGE_ID``: what became of one delivery.

It puts together what the delivery record in Redis says (arrivals,
refusals and why, when ingest stored it or found it already stored; see
``app.deliveries``), what the web processes counted under
``app.feedbus.pushed_key`` (clients it was pushed to), the dead-letter
stream, and the stored rows themselves. Without Redis only the database
can answer: refusals are not recorded in embedded mode.
"""

import json
from datetime import datetime
from typing import Any

import click
import redis
import sqlalchemy as sa

from app.events import format_timestamp
from app.models import Event
from app.store import event_to_json

REFUSALS = {
    "bad_signature": "bad signature",
    "stale": "stale (sent more than 10 minutes before it arrived, or dated ahead)",
    "missing_header": "a required header was missing",
    "malformed": "malformed",
    "too_large": "too large",
}
# The newest entries of the stream and of the dead letters looked through.
ENTRIES_SCANNED = 10_000


def check_message_id(ctx, param, value: str) -> str:
    value = value.strip()
    if not value or len(value) > 100:
        raise click.BadParameter(
            "must be a Twitch-Eventsub-Message-Id, 1 to 100 characters"
        )
    return value


@click.command()
@click.argument("message_id", callback=check_message_id)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
def explain(message_id: str, as_json: bool) -> None:
    """Tell what became of the delivery MESSAGE_ID.

    Accepted or refused and why, when it arrived, when it was stored (and
    its cursor), how many redeliveries were skipped, and to how many
    clients it was pushed. A delivery still buffered is found among the
    newest 10,000 stream entries. Exits 1 when nothing is known of it.
    """
    from cli import app_context

    with app_context() as session:
        from flask import current_app

        client = current_app.extensions.get("redis")
        stream = current_app.config["INGEST_STREAM"]
        try:
            facts = gather(session, client, stream, message_id)
        except redis.RedisError as e:
            raise click.ClickException(
                f"Redis unavailable ({type(e).__name__}); explain reads its "
                "delivery records there"
            ) from e

    if as_json:
        click.echo(json.dumps(facts, indent=2))
    else:
        for line in describe(facts):
            click.echo(line)
    if not facts["known"]:
        raise SystemExit(1)


def gather(session, client, stream: str, message_id: str) -> dict[str, Any]:
    """Everything known of one message id, as plain data."""
    rows = session.scalars(
        sa.select(Event)
        .where(
            sa.or_(
                Event.message_id == message_id,
                Event.message_id.startswith(message_id + ":", autoescape=True),
            )
        )
        .order_by(Event.id)
    ).all()
    facts: dict[str, Any] = {
        "message_id": message_id,
        "stored": [stored_facts(e) for e in rows],
        "redis": client is not None,
        "record": {},
        "buffered": [],
        "pushed_to": None,
        "dead_letters": [],
    }
    if client is not None:
        from app.deliveries import read_record
        from app.feedbus import pushed_key
        from app.ingest import dead_letter_stream

        facts["record"] = read_record(client, message_id)
        pushed = client.get(pushed_key(message_id))
        facts["pushed_to"] = int(pushed) if pushed is not None else None
        facts["dead_letters"] = find_entries(
            client, dead_letter_stream(stream), message_id
        )
        if not rows:
            facts["buffered"] = find_entries(client, stream, message_id)
    facts["known"] = any(
        facts[key] for key in ("stored", "record", "buffered", "dead_letters")
    )
    return facts


def find_entries(client, stream: str, message_id: str) -> list[dict[str, str]]:
    """The newest entries of a stream that carry ``message_id``."""
    found = []
    wanted = message_id.encode()
    for entry_id, fields in client.xrevrange(stream, count=ENTRIES_SCANNED):
        if fields.get(b"message_id") == wanted:
            found.append(
                {
                    "id": entry_id.decode(),
                    "received_at": fields.get(b"received_at", b"").decode(),
                    "reason": fields.get(b"reason", b"").decode(),
                    "failed_at": fields.get(b"failed_at", b"").decode(),
                }
            )
    return found


def stored_facts(event: Event) -> dict[str, Any]:
    described = event_to_json(event)
    facts = {
        key: described[key]
        for key in ("cursor", "message_id", "type", "streamer", "received_at")
    }
    moment = event.stored_at or event.received_at
    facts["stored_at"] = format_timestamp(moment)
    return facts


def describe(facts: dict[str, Any]) -> list[str]:
    """The facts as sentences for an operator."""
    message_id = facts["message_id"]
    record = facts["record"]
    if not facts["known"]:
        lines = [f"Nothing is known of message {message_id}."]
        if facts["redis"]:
            lines.append(
                "It never reached us, or its record expired (stored events are "
                "kept; refusals are remembered 1 day, or among the newest 10,000 "
                "when unsigned; skipped copies 7 days)."
            )
        else:
            lines.append(
                "It was never stored (refusals and skipped copies are recorded "
                "only with Redis)."
            )
        return lines

    lines = [f"Message {message_id}:"]
    for row in facts["stored"]:
        item = f" (item {row['message_id']})" if row["message_id"] != message_id else ""
        lines.append(
            f"  accepted: arrived {row['received_at']}, stored {row['stored_at']} "
            f"as cursor {row['cursor']}: {row['type']} for "
            f"{row['streamer']['login'] or 'no streamer'}{item}"
        )
    for entry in facts["buffered"]:
        lines.append(
            f"  accepted: arrived {format_iso(entry['received_at'])}, not stored "
            f"yet: still buffered for ingest (entry {entry['id']})"
        )
    for dead in facts["dead_letters"]:
        lines.append(
            f"  accepted, then not stored: dead letter {dead['id']} since "
            f"{format_iso(dead['failed_at'])}: {dead['reason']}"
        )
    duplicates = int(record.get("duplicates", 0))
    if duplicates:
        lines.append(
            f"  duplicate: {plural(duplicates)} found already stored and skipped, "
            f"the last arrived {format_iso(record['last_duplicate_arrived_at'])}"
        )
    refused = int(record.get("refused", 0))
    if refused:
        kind = record.get("refusal", "")
        lines.append(
            f"  refused: {plural(refused)} from {record.get('first_arrived_at')} to "
            f"{record.get('last_arrived_at')}, the last as "
            f"{REFUSALS.get(kind, kind)} ({record.get('refusal_status')}: "
            f"{record.get('refusal_reason')})"
        )
    if facts["redis"] and facts["stored"]:
        pushed = facts["pushed_to"]
        lines.append(
            f"  pushed to {pushed} clients"
            if pushed is not None
            else "  pushed to no client (none had the feed open, or not counted)"
        )
    return lines


def format_iso(text: str) -> str:
    """An ISO time from a stream entry, written as the rest of the output."""
    try:
        return format_timestamp(datetime.fromisoformat(text))
    except (TypeError, ValueError):
        return text


def plural(count: int) -> str:
    return f"{count} deliver{'y' if count == 1 else 'ies'}"
