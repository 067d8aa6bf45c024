"""An on-disk result cache (teacher answers, generated thinking): one sqlite row per finished request, committed
as soon as it is known, shared safely by several processes (one per GPU shard, or two runs at once).

The key of a request is a hash of everything that decides its answer (`request_key`): a changed prompt, model,
response format or sampling knob asks again; an unchanged one never does. A process claims a key before it
asks (`claim`), so a second process waits for that answer instead of paying for it again; a claim whose owner
died expires after its lease.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from thinking_summarizer.io.hashing import content_hash

OWNER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _alive(owner: str) -> bool:
    """Whether a claim's owner may still be running (a process of this machine that has exited is not)."""
    host, pid, _ = owner.split(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def request_key(request: dict[str, Any]) -> str:
    """The whole SHA-256 of the request as canonical JSON: a cache row is the answer to exactly this request."""
    return content_hash(request, 64)


class ResponseCache:
    """Survives a killed run: every `put` is committed before the next request finishes."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False, timeout=60, isolation_level=None)
        for attempt in range(100):  # switching to WAL does not wait for a second process opening the same file
            try:
                self._create()
                break
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or attempt == 99:
                    raise
                time.sleep(0.05)

    def _create(self) -> None:
        self.db.execute("PRAGMA journal_mode=WAL")
        # durable against a killed process (what resume is for); only a power cut may lose the last rows
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS outcomes (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, "
                        "expires REAL NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS notes (name TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def get(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT value FROM outcomes WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO outcomes VALUES (?, ?)", (key, json.dumps(value)))
        self.release(key)

    def claim(self, key: str, lease_s: float) -> bool:
        """Take the right to ask for `key` (or renew it); False while another live process holds it."""
        now = time.time()
        with self.db:  # one transaction: check and take together
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT owner, expires FROM claims WHERE key = ?", (key,)).fetchone()
            if row and row[0] != OWNER and row[1] > now and _alive(row[0]):
                return False
            self.db.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?)", (key, OWNER, now + lease_s))
            return True

    def release(self, key: str) -> None:
        self.db.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (key, OWNER))

    def note(self, name: str, value: str | None = None) -> str | None:
        """A small remembered fact (e.g. that a server ignores `response_format`); set it when `value` is given."""
        if value is not None:
            self.db.execute("INSERT OR REPLACE INTO notes VALUES (?, ?)", (name, value))
            return value
        row = self.db.execute("SELECT value FROM notes WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        self.db.close()
