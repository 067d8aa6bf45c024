"""A short, stable hash of any JSON-able value: config fingerprints, cache and run keys."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel


def content_hash(value: Any, chars: int = 16) -> str:
    """The first `chars` hex characters of the SHA-256 of `value` as canonical JSON (keys sorted; a parameter
    section as conf writes it)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:chars]


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    raise TypeError(f"{type(value).__name__} is not JSON-able")
