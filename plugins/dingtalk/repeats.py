"""Which work notices this node sent lately, so a repeat can be made unique.

DingTalk accepts a second work notice with the same content to the same user on the same day
and then silently drops it (docs/providers.md §2.3). The channel claims (app, user, content)
before sending; a claim that is already held means "repeat: add a suffix". Kept per process
for 24 hours (a rolling window covers DingTalk's calendar day), bounded in size.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Hashable

import msgspec

log = logging.getLogger(__name__)

DAY = 86_400.0


def content_key(appkey: str, agent_id: int, userid: str, msg: dict) -> tuple[Hashable, ...]:
    digest = hashlib.sha256(msgspec.json.encode(msg)).hexdigest()
    return (appkey, agent_id, userid, digest)


class RecentContents:
    """(app, user, content) keys sent (or being sent) in the last ``ttl`` seconds."""

    def __init__(self, ttl: float = DAY, max_entries: int = 200_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._until: OrderedDict[Hashable, float] = OrderedDict()

    def claim(self, key: Hashable) -> bool:
        """True if ``key`` is new (send as is; the claim is now held); False for a repeat."""
        now = time.monotonic()
        self._expire(now)
        if key in self._until:
            return False
        self._until[key] = now + self._ttl
        if len(self._until) > self._max:
            self._until.popitem(last=False)
        return True

    def release(self, key: Hashable) -> None:
        """Give a claim back: the send did not reach DingTalk."""
        self._until.pop(key, None)

    def _expire(self, now: float) -> None:
        while self._until:
            key, until = next(iter(self._until.items()))
            if until > now:
                return
            del self._until[key]
