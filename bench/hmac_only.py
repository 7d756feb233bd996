"""The yardstick for bench/webhooks.py: a Flask app that only checks the HMAC.

It reads the body, verifies Twitch's signature over message id, timestamp
and body in constant time, and answers 204 (403 when it does not match).
Nothing is parsed or stored. Served by gunicorn with the same settings as
the real app: ``gunicorn -c gunicorn.conf.py --pythonpath bench hmac_only:app``.
"""

import hashlib
import hmac
import os

from flask import Flask
from flask import Response
from flask import request

SECRET = os.environ["EVENTSUB_SECRET"].encode()

app = Flask(__name__)


@app.post("/webhooks/eventsub")
def receive() -> Response:
    headers = request.headers
    message = (
        headers.get("Twitch-Eventsub-Message-Id", "").encode()
        + headers.get("Twitch-Eventsub-Message-Timestamp", "").encode()
        + request.get_data()
    )
    expected = "sha256=" + hmac.new(SECRET, message, hashlib.sha256).hexdigest()
    given = headers.get("Twitch-Eventsub-Message-Signature", "")
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return Response(status=403)
    return Response(status=204)
