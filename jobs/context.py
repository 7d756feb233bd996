"""The app a job runs in.

In a worker, ``cli.py worker`` builds the app once (from the environment)
and hands it here before the work horses fork; in embedded mode the
in-process runner pushes the running app's context itself. A job function
wrapped with ``job`` runs inside an app context either way, so RQ can
import it by name and call it with plain arguments.
"""

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask import has_app_context

_app: Flask | None = None


def use_app(app: Flask) -> None:
    """Make ``app`` the one every job of this process runs in."""
    global _app
    _app = app


def job_app() -> Flask:
    """The app for jobs: the one given to ``use_app``, else one from the
    environment, built once."""
    global _app
    if _app is None:
        from app import create_app

        _app = create_app()
    return _app


def job(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``func`` inside an app context, pushing one when there is none."""

    @functools.wraps(func)
    def run(*args, **kwargs):
        if has_app_context():
            return func(*args, **kwargs)
        with job_app().app_context():
            return func(*args, **kwargs)

    return run
