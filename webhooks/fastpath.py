"""The production fast path for notifications, in front of Flask.

With REDIS_URL set, a notification needs nothing but its headers, its body,
the secret and one XADD; the request context, routing, session and hooks
of the full Flask app cost more than all of that together. This WSGI
middleware answers ``POST /webhooks/eventsub`` notifications itself with
exactly the checks, answers, logs and counts of ``webhooks.views``
(``read_message``, then ``append_to_stream``),
and hands every other request, including verifications and revocations,
to the Flask app unchanged. It is installed only when Redis is configured;
embedded mode stores in the request through the Flask view.
"""

import logging
from datetime import UTC
from datetime import datetime

import redis
from flask import Flask
from werkzeug.datastructures import EnvironHeaders

from webhooks.messages import NOTIFICATION
from webhooks.messages import TIMESTAMP
from webhooks.messages import TOO_LARGE
from webhooks.messages import Refused
from webhooks.messages import accepted_secrets
from webhooks.messages import noted_id
from webhooks.messages import read_message
from webhooks.views import append_to_stream
from webhooks.views import note_refusal

logger = logging.getLogger(__name__)

PATH = "/webhooks/eventsub"
NO_CONTENT = "204 No Content"
UNAVAILABLE = b"event buffer unavailable, retry later\n"
STATUS_LINES = {
    400: "400 Bad Request",
    403: "403 Forbidden",
    413: "413 Content Too Large",
    503: "503 Service Unavailable",
}
HEADERS = [("X-Content-Type-Options", "nosniff")]


class BufferedNotifications:
    """WSGI middleware: verified notifications straight to the ingest stream."""

    def __init__(self, app: Flask, wsgi_app) -> None:
        self.next = wsgi_app
        self.client: redis.Redis = app.extensions["redis"]
        self.appender = app.extensions["stream_appender"]
        self.config = app.config
        self.max_bytes = app.config["WEBHOOK_MAX_BYTES"]

    def __call__(self, environ, start_response):
        if (
            environ.get("PATH_INFO") != PATH
            or environ.get("REQUEST_METHOD") != "POST"
            or environ.get("HTTP_TWITCH_EVENTSUB_MESSAGE_TYPE", "").strip()
            != NOTIFICATION
            or not environ.get("CONTENT_LENGTH", "").isdigit()
        ):
            return self.next(environ, start_response)

        headers = EnvironHeaders(environ)
        message_id = noted_id(headers)
        now = datetime.now(UTC)
        try:
            raw = self.read_body(environ)
            message = read_message(headers, raw, accepted_secrets(self.config), now)
        except Refused as e:
            note_refusal(self.client, message_id, now, e)
            return answer(start_response, e.status, (e.reason + "\n").encode())

        timestamp = headers[TIMESTAMP].strip()
        if not append_to_stream(self.appender, message.id, timestamp, raw, now):
            return answer(start_response, 503, UNAVAILABLE)
        start_response(NO_CONTENT, list(HEADERS))
        return [b""]

    def read_body(self, environ) -> bytes:
        length = int(environ["CONTENT_LENGTH"])
        if length > self.max_bytes:
            raise Refused(413, f"body is larger than {self.max_bytes} bytes", TOO_LARGE)
        return environ["wsgi.input"].read(length)


def answer(start_response, status: int, body: bytes):
    start_response(
        STATUS_LINES[status],
        [
            *HEADERS,
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]
