"""A short, stable hash of any JSON-able value: config fingerprints, cache and run keys."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def content_hash(value: Any, chars: int = 16) -> str:
    """The first `chars` hex characters of the SHA-256 of `value` as canonical JSON (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:chars]
