"""``cli.py explain MESSAGE_ID``: what became of one delivery.

It puts together what the delivery record in Redis says (arrivals,
refusals and why, when ingest stored it or found it already stored; see
``app.deliveries``), what the web processes counted under
``app.feedbus.PUSHED_KEY`` (clients it was pushed to), the dead-letter
stream, and the stored rows themselves. Without Redis only the database
can answer: refusals are not recorded in embedded mode.
"""

import json
from typing import Any

import click
import sqlalchemy as sa

from app.models import Event
from app.store import event_to_json

REFUSALS = {
    "bad_signature": "bad signature",
    "stale": "stale (sent more than 10 minutes before it arrived, or dated ahead)",
    "missing_header": "a required header was missing",
    "malformed": "malformed",
    "too_large": "too large",
}
DEAD_LETTERS_SCANNED = 10_000


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
    clients it was pushed. Exits 1 when nothing is known of it.
    """
    from cli import app_context

    with app_context() as session:
        from flask import current_app

        client = current_app.extensions.get("redis")
        stream = current_app.config["INGEST_STREAM"]
        facts = gather(session, client, stream, message_id)

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
        "stored": [
            {
                key: event_to_json(e)[key]
                for key in ("cursor", "message_id", "type", "streamer", "received_at")
            }
            for e in rows
        ],
        "redis": client is not None,
        "record": {},
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
        for entry_id, fields in client.xrevrange(
            dead_letter_stream(stream), count=DEAD_LETTERS_SCANNED
        ):
            if fields.get(b"message_id") == message_id.encode():
                facts["dead_letters"].append(
                    {
                        "id": entry_id.decode(),
                        "reason": fields.get(b"reason", b"").decode(),
                        "failed_at": fields.get(b"failed_at", b"").decode(),
                    }
                )
    facts["known"] = bool(facts["stored"] or facts["record"] or facts["dead_letters"])
    return facts


def describe(facts: dict[str, Any]) -> list[str]:
    """The facts as sentences for an operator."""
    message_id = facts["message_id"]
    record = facts["record"]
    if not facts["known"]:
        lines = [f"Nothing is known of message {message_id}."]
        if facts["redis"]:
            lines.append(
                "It never reached us, or its record expired (accepted deliveries "
                "are remembered 7 days, refused ones 1 day)."
            )
        else:
            lines.append("It was never stored (refusals are recorded only with Redis).")
        return lines

    lines = [f"Message {message_id}:"]
    if record:
        accepted = int(record.get("accepted", 0))
        refused = int(record.get("refused", 0))
        lines.append(
            f"  arrived {record.get('first_arrived_at')} first, "
            f"{record.get('last_arrived_at')} last: {plural(accepted + refused)}, "
            f"{accepted} accepted, {refused} refused"
        )
        if refused:
            kind = record.get("refusal", "")
            lines.append(
                f"  refused: last as {REFUSALS.get(kind, kind)} "
                f"({record.get('refusal_status')}: {record.get('refusal_reason')})"
            )
    for row in facts["stored"]:
        stored_at = record.get("stored_at") or row["received_at"]
        lines.append(
            f"  stored {stored_at} as cursor {row['cursor']}: {row['type']} for "
            f"{row['streamer']['login'] or 'no streamer'}"
            + (
                f" (item {row['message_id']})"
                if row["message_id"] != message_id
                else ""
            )
        )
    duplicates = int(record.get("duplicates", 0))
    if duplicates:
        lines.append(
            f"  duplicate: {plural(duplicates)} found already stored and skipped"
        )
    if record and int(record.get("accepted", 0)) and not facts["stored"]:
        if facts["dead_letters"]:
            lines.append("  not stored: it is in the dead-letter stream")
        else:
            lines.append("  not stored yet: still buffered for ingest")
    for dead in facts["dead_letters"]:
        lines.append(
            f"  dead letter {dead['id']} since {dead['failed_at']}: {dead['reason']}"
        )
    if facts["redis"] and facts["stored"]:
        pushed = facts["pushed_to"]
        lines.append(
            f"  pushed to {pushed} clients"
            if pushed is not None
            else "  pushed to no client (none had the feed open, or not counted)"
        )
    return lines


def plural(count: int) -> str:
    return f"{count} deliver{'y' if count == 1 else 'ies'}"
