"""A strict local fake of Slack (Web API, Socket Mode, response_url) for wscheck's tests. See `server.py`."""

from .models import ApiCall, Channel, Envelope, EphemeralMessage, Message, ResponseUrlPost, User, Usergroup
from .server import FakeSlack

__all__ = [
    "ApiCall",
    "Channel",
    "Envelope",
    "EphemeralMessage",
    "FakeSlack",
    "Message",
    "ResponseUrlPost",
    "User",
    "Usergroup",
]
