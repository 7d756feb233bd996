"""Shared, unbound extension objects; ``create_app`` binds them."""

from flask_sock import Sock

from app.broker import LocalBroker
from app.db import Database

db = Database()
sock = Sock()
broker = LocalBroker()
