"""The command line of the subscription jobs.

``subscribe LOGIN`` pins a streamer and ensures its subscriptions now;
``unsubscribe LOGIN`` unpins it and deletes them; ``subscriptions`` prints
them as a table (type, version, status, cost, created, and which secret);
``reconcile`` runs the reconcile now; ``worker`` runs the RQ worker with
the periodic jobs. An unknown login or a bad option exits 2 saying what is
accepted.
"""

import click
import sqlalchemy as sa
from tabulate import tabulate

from app.logins import normalize_login

# Statuses Twitch gives subscriptions (Get EventSub Subscriptions, webhooks).
STATUSES = (
    "enabled",
    "webhook_callback_verification_pending",
    "webhook_callback_verification_failed",
    "notification_failures_exceeded",
    "authorization_revoked",
    "moderator_removed",
    "user_removed",
    "chat_user_banned",
    "version_removed",
    "beta_maintenance",
)


def check_login(ctx, param, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalize_login(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


def unknown_login(login: str, hint: str = "LOGIN") -> click.BadParameter:
    return click.BadParameter(
        f"there is no Twitch channel named {login!r}", param_hint=hint
    )


def look_up(login: str) -> dict:
    """The Twitch user named ``login``; exit 2 if there is none."""
    from app.twitch import TwitchError
    from app.twitch import twitch

    try:
        user = twitch().find_user(login)
    except TwitchError as e:
        raise click.ClickException(f"Twitch cannot be reached: {e}{hint()}") from e
    if user is None:
        raise unknown_login(login)
    return user


def helix_failure(e: Exception) -> click.ClickException:
    return click.ClickException(f"Twitch did not do it: {e}{hint()}")


def hint() -> str:
    """Where the simulated Twitch is expected, when it plays Twitch."""
    from flask import current_app

    config = current_app.config
    if not config.get("TWITCH_SIMULATED"):
        return ""
    return (
        f". The simulator plays Twitch inside the running app: start it with "
        f"`python cli.py run` and give this command the same PORT (now "
        f"{config['PORT']})"
    )


@click.command()
@click.argument("login", callback=check_login)
def subscribe(login: str) -> None:
    """Keep LOGIN's EventSub subscriptions, whoever has it as favorite."""
    from app.extensions import db
    from app.twitch import TwitchError
    from cli import app_context
    from jobs.subscriptions import ensure
    from jobs.subscriptions import save_streamer

    with app_context():
        user = look_up(login)
        streamer = save_streamer(user["id"], user["login"])
        streamer.pinned = True
        db.session.commit()
        try:
            outcome = ensure(user["id"], user["login"])
        except (TwitchError, RuntimeError) as e:
            raise helix_failure(e) from e
        click.echo(f"{user['login']}: {outcome}.")
        for kind, reason in sorted(outcome.notes.items()):
            click.echo(f"  {kind}: not subscribed, {reason}")


@click.command()
@click.argument("login", callback=check_login)
def unsubscribe(login: str) -> None:
    """Delete LOGIN's EventSub subscriptions, at Twitch and here."""
    from app.extensions import db
    from app.models import Streamer
    from app.models import User
    from app.twitch import TwitchError
    from cli import app_context
    from jobs.subscriptions import remove_streamer

    with app_context():
        streamer = db.session.scalar(sa.select(Streamer).where(Streamer.login == login))
        streamer_id = streamer.id if streamer else look_up(login)["id"]
        if streamer is not None:
            streamer.pinned = False
            db.session.commit()
        try:
            result = remove_streamer(streamer_id)
        except (TwitchError, RuntimeError) as e:
            raise helix_failure(e) from e
        click.echo(f"{login}: {result}.")
        fans = db.session.scalar(
            sa.select(sa.func.count()).where(User.favorite_id == streamer_id)
        )
        if fans:
            click.echo(
                f"{fans} viewer(s) still have {login} as favorite: the next "
                "reconcile subscribes again."
            )


@click.command()
@click.option(
    "--status", type=click.Choice(STATUSES), help="Only subscriptions in this status."
)
@click.option("--streamer", callback=check_login, help="Only this streamer's.")
def subscriptions(status: str | None, streamer: str | None) -> None:
    """List the EventSub subscriptions streamfeed keeps."""
    from flask import current_app

    from app.extensions import db
    from app.models import ReconcileRun
    from app.models import Streamer
    from app.models import Subscription
    from cli import app_context
    from jobs.subscriptions import fingerprint

    with app_context():
        config = current_app.config
        query = sa.select(Subscription).order_by(
            Subscription.streamer_id, Subscription.type, Subscription.created_at
        )
        if status:
            query = query.where(Subscription.status == status)
        logins = dict(db.session.execute(sa.select(Streamer.id, Streamer.login)).all())
        if streamer:
            ids = [i for i, name in logins.items() if name == streamer]
            if not ids:
                raise click.BadParameter(
                    f"streamfeed keeps no subscriptions for {streamer!r}",
                    param_hint="--streamer",
                )
            query = query.where(Subscription.streamer_id.in_(ids))
        rows = db.session.scalars(query).all()

        current = fingerprint(config["EVENTSUB_SECRET"])
        previous = config.get("EVENTSUB_SECRET_PREVIOUS")
        previous = fingerprint(previous) if previous else None

        def secret(row) -> str:
            if row.secret_fingerprint == current:
                return "current"
            if previous and row.secret_fingerprint == previous:
                return "previous"
            return "unknown"

        table = [
            (
                logins.get(row.streamer_id, row.streamer_id),
                row.type,
                row.version,
                row.status,
                row.cost,
                row.created_at.strftime("%Y-%m-%d %H:%M") if row.created_at else "",
                secret(row),
            )
            for row in rows
        ]
        headers = ("streamer", "type", "version", "status", "cost", "created", "secret")
        click.echo(tabulate(table, headers=headers))
        old = sum(1 for row in table if row[-1] != "current")
        click.echo(
            f"\n{len(rows)} subscription(s); {old} not on the current secret"
            + (" (EVENTSUB_SECRET_PREVIOUS is set)" if previous else "")
            + "."
        )
        run = db.session.scalar(
            sa.select(ReconcileRun).order_by(ReconcileRun.id.desc()).limit(1)
        )
        if run is not None:
            click.echo(
                f"Last reconcile {run.finished_at:%Y-%m-%d %H:%M}: cost "
                f"{run.total_cost} of Twitch's maximum {run.max_total_cost}, "
                f"{run.total} at Twitch."
            )


@click.command()
def reconcile() -> None:
    """Compare Twitch's subscriptions with the database and repair them now."""
    from app.twitch import TwitchError
    from cli import app_context
    from jobs.subscriptions import reconcile as run_reconcile

    with app_context():
        try:
            click.echo(f"Reconciled: {run_reconcile()}.")
        except (TwitchError, RuntimeError) as e:
            raise helix_failure(e) from e


@click.command()
@click.option("--burst", is_flag=True, help="Stop once the queue is empty.")
@click.option("--queue", help="Queue to work (default: streamfeed).")
def worker(burst: bool, queue: str | None) -> None:
    """Run background jobs from Redis, and the periodic ones (RQ)."""
    from cli import make_app
    from jobs.worker import run_worker

    app = make_app()
    for name in ("REDIS_URL", "EVENTSUB_CALLBACK_URL"):
        if not app.config.get(name):
            raise click.ClickException(
                f"configuration: {name} must be set for the worker"
            )
    run_worker(app, queue, burst)
