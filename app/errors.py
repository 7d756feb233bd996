"""Error pages and JSON errors, one shape for the whole app.

JSON endpoints answer ``{"error": <machine code>, "message": <human text>}``;
pages get a short HTML page. Both roll back the database session first.
"""

import logging

from flask import Flask
from flask import jsonify
from flask import render_template
from flask import request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import BadHost
from werkzeug.exceptions import HTTPException
from wsproto.utilities import RemoteProtocolError

from app.extensions import db

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """A JSON API request we cannot serve, with a code and a message."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(BadHost, handle_bad_host)
    app.register_error_handler(RemoteProtocolError, handle_bad_handshake)
    app.register_error_handler(UnicodeDecodeError, handle_bad_handshake)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected_error)


def wants_json() -> bool:
    return request.path.startswith("/api/")


def handle_api_error(e: ApiError):
    db.session.rollback()
    return jsonify(error=e.code, message=e.message), e.status


def handle_csrf_error(e: CSRFError):
    logger.warning("Request %s %s: refused, %s", request.method, request.path, e)
    message = (
        "This form was not sent from a page of streamfeed, or it is too old. "
        "Go back, reload the page and send it again."
    )
    db.session.rollback()
    return render_template(
        "pages/error.html", title="Form refused", message=message
    ), 400


def handle_bad_host(e: BadHost):
    """A Host header Werkzeug cannot read leaves no URLs to build a page with."""
    message = "The Host header is not a host name this server can answer for."
    if wants_json():
        return jsonify(error="bad_host", message=message), 400
    return f"{message}\n", 400, {"Content-Type": "text/plain; charset=utf-8"}


def handle_bad_handshake(e: RemoteProtocolError | UnicodeDecodeError):
    """A websocket upgrade without the headers the protocol needs.

    wsproto reads handshake headers as ASCII; a UnicodeDecodeError raised
    anywhere else is ours, and a 500.
    """
    if not raised_in_wsproto(e):
        return handle_unexpected_error(e)
    logger.info("Request %s %s: refused, %s", request.method, request.path, e)
    message = f"Not a websocket handshake this server can accept: {e}."
    return f"{message}\n", 400, {"Content-Type": "text/plain; charset=utf-8"}


def raised_in_wsproto(e: Exception) -> bool:
    frame = e.__traceback__
    while frame is not None:
        if frame.tb_frame.f_globals.get("__name__", "").startswith("wsproto"):
            return True
        frame = frame.tb_next
    return False


def handle_http_error(e: HTTPException):
    db.session.rollback()
    code = (e.name or "error").lower().replace(" ", "_")
    if wants_json():
        return jsonify(error=code, message=e.description), e.code
    if request.path.startswith("/webhooks/"):
        return f"{e.description}\n", e.code, {"Content-Type": "text/plain"}
    page = render_template("pages/error.html", title=e.name, message=e.description)
    return page, e.code


def handle_unexpected_error(e: Exception):
    logger.exception("Request %s %s: unexpected error", request.method, request.path)
    db.session.rollback()
    message = "Something went wrong on our side; it has been logged."
    if wants_json():
        return jsonify(error="internal_error", message=message), 500
    return render_template("pages/error.html", title="Error", message=message), 500
