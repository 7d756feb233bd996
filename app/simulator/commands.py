"""Commands that send simulated EventSub traffic to a webhook receiver.

``trigger`` sends a few notifications of one type, as ``twitch event
trigger`` does; ``simulate`` runs a ``Simulator`` until interrupted. Both
work against any receiver, ours or not.
"""

import math
import time
from urllib.parse import urlsplit

import click
import requests

from app.config import secret_problem
from app.logins import normalize_login
from app.simulator.messages import SAMPLE_TYPES
from app.simulator.messages import Message
from app.simulator.messages import build_headers
from app.simulator.messages import build_notification
from app.simulator.runner import MAX_RATE
from app.simulator.runner import Simulator

# Twitch expects an answer within a few seconds; twitch-cli waits 10.
SEND_TIMEOUT = 10.0

_URL_HELP = "Webhook URL, e.g. http://localhost:5000/webhooks/eventsub."
_SECRET_HELP = "EventSub secret to sign with: 10 to 100 ASCII characters."
_STREAMERS_HELP = (
    "Channel to send for; repeat for more. [default: both sample channels]"
)


def _check_type(ctx, param, value):
    """Accept a subscription type that has a sample."""
    if value is None or value in SAMPLE_TYPES:
        return value

    accepted = ", ".join(SAMPLE_TYPES)
    message = f"no sample for {value!r}; accepted types: {accepted}"
    raise click.BadParameter(message)


def _check_url(ctx, param, value):
    """Accept an http or https URL with a host."""
    if value is None:
        return value

    message = f"must be an http:// or https:// URL with a host, got {value!r}"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as e:
        raise click.BadParameter(f"{message} ({e})") from e
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(message)
    return value


def _check_rate(ctx, param, value):
    """FloatRange lets NaN through, since every comparison with it is false."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"must be above 0 and at most {MAX_RATE}, got nan")
    return value


def _check_secret(ctx, param, value):
    """Accept a secret Twitch would accept, without ever echoing it."""
    problem = None if value is None else secret_problem(value)
    if problem:
        raise click.BadParameter(problem)
    return value


def _check_logins(ctx, param, value):
    """Accept one login, or several, in the form Twitch allows."""
    try:
        if isinstance(value, str):
            return normalize_login(value)
        return tuple(normalize_login(login) for login in value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


@click.command()
@click.argument(
    "subscription_type", metavar="TYPE", required=False, callback=_check_type
)
@click.option("--list", "show_list", is_flag=True, help="Print the types and exit.")
@click.option("--to", "url", metavar="URL", callback=_check_url, help=_URL_HELP)
@click.option(
    "--secret",
    envvar="EVENTSUB_SECRET",
    show_envvar=True,
    callback=_check_secret,
    help=_SECRET_HELP,
)
@click.option(
    "--streamer",
    default="example_streamer",
    show_default=True,
    callback=_check_logins,
    help="Login of the channel the events belong to.",
)
@click.option(
    "--count",
    type=click.IntRange(1, 10_000),
    default=1,
    show_default=True,
    help="Number of notifications to send.",
)
def trigger(subscription_type, show_list, url, secret, streamer, count):
    """Send signed sample EventSub notifications of TYPE to a webhook URL."""
    if show_list:
        for name, version in SAMPLE_TYPES.items():
            click.echo(f"{name} v{version}")
        return

    _require_trigger_input(subscription_type, url, secret)
    refused = 0
    with requests.Session() as session:
        for _ in range(count):
            message = build_notification(subscription_type, streamer)
            status = _send(session, url, secret, message)
            click.echo(f"{message.message_id} {status}")
            refused += not 200 <= status < 300

    if refused:
        message = f"{refused} of {count} messages got no 2xx answer"
        raise click.ClickException(message)


@click.command()
@click.option(
    "--to",
    "url",
    metavar="URL",
    required=True,
    callback=_check_url,
    help=_URL_HELP,
)
@click.option(
    "--secret",
    envvar="EVENTSUB_SECRET",
    show_envvar=True,
    required=True,
    callback=_check_secret,
    help=_SECRET_HELP,
)
@click.option(
    "--rate",
    type=click.FloatRange(0, MAX_RATE, min_open=True),
    callback=_check_rate,
    default=2.0,
    show_default=True,
    help="Events per second.",
)
@click.option(
    "--streamer",
    "streamers",
    multiple=True,
    callback=_check_logins,
    help=_STREAMERS_HELP,
)
def simulate(url, secret, rate, streamers):
    """Send a steady stream of signed sample events until Ctrl-C."""
    simulator = Simulator(url, secret, rate=rate, streamers=streamers or None)
    simulator.start()
    click.echo(f"Sending {rate:g} events/s to {url}; Ctrl-C stops.", err=True)

    try:
        while simulator.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("Stopping.", err=True)
    finally:
        simulator.stop()
    if simulator.failure:
        raise click.ClickException(simulator.failure)


def _require_trigger_input(subscription_type, url, secret) -> None:
    """Fail with a usage error when a type, a URL or a secret is missing."""
    if subscription_type is None:
        raise click.UsageError("Missing argument 'TYPE'; --list shows them.")
    if url is None:
        raise click.UsageError("Missing option '--to'.")
    if secret is None:
        raise click.UsageError("Missing option '--secret' (or EVENTSUB_SECRET).")


def _send(session: requests.Session, url: str, secret: str, message: Message):
    """POST one signed message and return the HTTP status of the answer."""
    try:
        # Twitch does not follow redirects from a callback, so neither do we.
        response = session.post(
            url,
            data=message.body,
            headers=build_headers(message, secret),
            timeout=SEND_TIMEOUT,
            allow_redirects=False,
        )
    except requests.ConnectionError as e:
        raise click.ClickException(f"cannot connect to {url}; is it up?") from e
    except requests.Timeout as e:
        wait = f"{SEND_TIMEOUT:g} s"
        raise click.ClickException(f"no answer from {url} within {wait}") from e
    except requests.RequestException as e:
        raise click.ClickException(f"sending to {url} failed: {e}") from e
    return response.status_code
