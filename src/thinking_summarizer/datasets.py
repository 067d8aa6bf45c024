"""Kedro dataset for files that a node writes while it streams (masked videos, mask files)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset


class StagedFileDataset(AbstractDataset[str, str]):
    """`save` takes the path of a finished file and moves it into place (nothing is held in memory);
    `load` returns the file's path, for opencv, PyAV or a notebook's video player."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None):
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> str:
        return str(self._filepath)

    def save(self, data: str) -> None:
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(data, self._filepath)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
