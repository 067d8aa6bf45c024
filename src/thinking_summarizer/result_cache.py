"""An on-disk result cache (teacher answers, generated thinking): one sqlite row per finished sample,
committed as soon as it is known, shared safely by several processes (one per GPU shard)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any


def cache_key(model: str, prompt_version: str, text: str) -> str:
    """Key of a request: the model, the prompt (or its version) and the input's hash."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    return hashlib.sha256(f"{model}\n{prompt_version}\n{digest}".encode()).hexdigest()


class ResponseCache:
    """Survives a killed run: every `put` is committed before the next request finishes."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        # durable against a killed process (what resume is for); only a power cut may lose the last rows
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS outcomes (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.commit()

    def get(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT value FROM outcomes WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO outcomes VALUES (?, ?)", (key, json.dumps(value)))
        self.db.commit()

    def close(self) -> None:
        self.db.close()
