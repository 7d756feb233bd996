"""``cli.py run``: gunicorn in the foreground, the simulator beside it.

The web process is gunicorn with threads (flask-sock holds one thread per
open feed). In embedded mode one worker is enough and keeps the in-process
feeds (app/fanout.py) meaningful. The simulator, when on, runs as a thread
of this master process and reaches the worker over real HTTP, like Twitch
would. The Procfile's web uses gevent workers instead (gunicorn.conf.py).
"""

import logging
from typing import Any

from gunicorn.app.base import BaseApplication

logger = logging.getLogger(__name__)


class Server(BaseApplication):
    """A gunicorn application that builds the Flask app in its worker."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from app import create_app

        app = create_app()
        if app.config["SIMULATOR"] and app.config["TWITCH_SIMULATED"]:
            from app.simulator.eventsub_api import seed_runner_subscriptions

            seed_runner_subscriptions(app)
        if not app.config["REDIS_URL"]:
            # Embedded mode: no worker process, so jobs run in this one.
            from jobs.queue import start_schedule

            start_schedule(app)
        return app


def serve(config: dict[str, Any], host: str, port: int, threads: int) -> None:
    """Serve until interrupted, with the simulator when the config turns it on."""
    simulator = start_simulator(config, port) if config["SIMULATOR"] else None
    options = {
        "bind": f"{host}:{port}",
        "worker_class": "gthread",
        "workers": 1,
        "threads": threads,
        "accesslog": None,
    }
    logger.info("Web: serving on http://localhost:%s", port)
    try:
        Server(options).run()
    finally:
        if simulator is not None:
            simulator.stop()


def start_simulator(config: dict[str, Any], port: int):
    from app.simulator.runner import Simulator

    url = f"http://127.0.0.1:{port}/webhooks/eventsub"
    simulator = Simulator(url, config["EVENTSUB_SECRET"], rate=config["SIMULATOR_RATE"])
    simulator.start()
    return simulator
