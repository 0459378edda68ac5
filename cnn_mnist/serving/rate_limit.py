"""A per-client token bucket: at most N requests a minute, a burst of N, and how long to wait past it.

A bucket is two numbers (tokens, when last seen), not a log of times, so a client costs the same
whatever its rate. Memory is bounded by `max_clients`: the least recently seen client is forgotten
first, and a client not seen for a minute has a full bucket, which is what forgetting it gives back.
"""

import math
import threading
import time
from collections import OrderedDict

MAX_CLIENTS = 100_000  # 26 MB of buckets at most (tracemalloc, IPv4 and IPv6 keys alike: ~260 bytes each)


class RateLimiter:
    def __init__(self, per_minute: int, max_clients: int = MAX_CLIENTS, clock=time.monotonic):
        if per_minute <= 0:
            raise ValueError("per_minute must be positive (a limiter of 0 is no limiter: do not make one)")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60  # tokens a second
        self.max_clients = max_clients
        self.clock = clock
        self._buckets = OrderedDict()  # client -> (tokens, last seen), least recently seen first
        self._lock = threading.Lock()

    def acquire(self, client: str) -> float:
        """Take one token for `client`: 0 when allowed, else the seconds until one is there (nothing taken)."""
        now = self.clock()
        with self._lock:
            tokens, seen = self._buckets.pop(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - seen) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self._buckets[client] = (tokens - 1 if wait == 0 else tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return wait

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(wait: float) -> str:
    """HTTP's Retry-After counts whole seconds: round up, so that a client who waits it is let in."""
    return str(max(1, math.ceil(wait)))
