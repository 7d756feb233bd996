"""Shared, unbound extension objects; ``create_app`` binds them."""

from flask_sock import Sock
from flask_wtf.csrf import CSRFProtect

from app.broker import LocalBroker
from app.cache import Cache
from app.db import Database

db = Database()
sock = Sock()
broker = LocalBroker()
cache = Cache()
csrf = CSRFProtect()
