"""Shared, unbound extension objects; ``create_app`` binds them."""

from flask_sock import Sock
from flask_wtf.csrf import CSRFProtect

from app.cache import Cache
from app.db import Database
from app.fanout import Fanout

db = Database()
sock = Sock()
# The webhook calls ``broker.announce`` after storing; feeds open on it.
broker = Fanout()
cache = Cache()
csrf = CSRFProtect()
