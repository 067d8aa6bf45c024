"""Client-side limits on requests and tokens per minute (token buckets for asyncio)."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """Allows `per_minute` units per minute with bursts up to that size; `None` means unlimited."""

    def __init__(self, per_minute: float | None):
        self.rate = per_minute / 60.0 if per_minute else None
        self.capacity = float(per_minute or 0)
        self.level = self.capacity
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self, amount: float = 1.0) -> None:
        if self.rate is None:
            return
        amount = min(amount, self.capacity)
        async with self.lock:
            while True:
                now = time.monotonic()
                self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.level >= amount:
                    self.level -= amount
                    return
                await asyncio.sleep((amount - self.level) / self.rate)
