"""Kedro datasets of the project: the stock file datasets made atomic, and staged files (videos, mask files).

Every file dataset the project writes saves beside its target and renames into place, so a run killed while
saving never leaves a truncated newest version for the next run to load.
"""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset
from kedro.io.core import DatasetError, get_filepath_str
from kedro_datasets.huggingface import JSONDataset as _HFJSONDataset
from kedro_datasets.json import JSONDataset as _JSONDataset
from kedro_datasets.text import TextDataset as _TextDataset

from thinking_summarizer.io.result_cache import ResponseCache


class AtomicSave:
    """Mixin for a kedro-datasets file dataset: `save` writes `.<name>.partial` beside the target, then renames it.

    A versioned dataset's newest version is found by its file name, so a partial file is never loaded."""

    _partial = False

    def _get_save_path(self) -> PurePosixPath:
        final = super()._get_save_path()
        return final.with_name(f".{final.name}.partial") if self._partial else final

    def save(self, data: Any) -> None:
        final = get_filepath_str(self._get_save_path(), self._protocol)
        self._partial = True
        try:
            partial = get_filepath_str(self._get_save_path(), self._protocol)
            try:
                inspect.unwrap(super().save)(self, data)  # the stock writer, aimed at the partial path
            except BaseException:
                if self._fs.exists(partial):
                    self._fs.rm(partial)
                if self._local_versions():
                    _remove_if_empty(Path(partial).parent)  # this save's own version folder
                raise
        finally:
            self._partial = False
        self._fs.mv(partial, final)
        self._sweep(final)

    def _sweep(self, final: str) -> None:
        """Remove what a killed save of this dataset left: its partial files in other version folders (and those
        folders, when nothing else is in them). Local files only."""
        if not self._local_versions():
            return
        target = Path(final)
        for stale in target.parent.parent.glob(f"*/.{target.name}.partial"):
            if stale.parent != target.parent:
                stale.unlink(missing_ok=True)
                _remove_if_empty(stale.parent)

    def _local_versions(self) -> bool:
        return self._protocol == "file" and bool(getattr(self, "_version", None))


def _remove_if_empty(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


class JSONDataset(AtomicSave, _JSONDataset):
    """`json.JSONDataset`, saved atomically."""


class TinyModelDataset(JSONDataset):
    """Which tiny model demo_data built for a role (`{"model": folder, ...}`), `{}` for none: also what a run
    that did not build one reads (a GPU machine's first `--pipelines thinking_generation`), not an error."""

    def load(self) -> Any:
        return super().load() if self._exists() else {}


class TextDataset(AtomicSave, _TextDataset):
    """`text.TextDataset`, saved atomically."""


class HFJSONDataset(AtomicSave, _HFJSONDataset):
    """`huggingface.JSONDataset`, saved atomically."""


class _LocalFile:
    """A dataset of one local file at `filepath` (Kedro reads `_exists` and `_describe`)."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None):
        self._filepath = Path(filepath)
        self.metadata = metadata

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class StagedFileDataset(_LocalFile, AbstractDataset[str, str]):
    """`save` takes the path of a finished file and moves it into place (nothing is held in memory);
    `load` returns the file's path, for opencv, PyAV or a notebook's video player."""

    def load(self) -> str:
        return str(self._filepath)

    def save(self, data: str) -> None:
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(data, self._filepath)


class ResponseCacheDataset(_LocalFile, AbstractDataset[None, ResponseCache]):
    """A content-keyed result cache (SQLite) as a catalog entry, so that the nodes sharing it are joined by an edge
    kedro-viz shows: `load` opens it (creating it when missing); the nodes write through it, entry by entry, as
    results come, so a killed run keeps what it finished. There is nothing to `save`."""

    def load(self) -> ResponseCache:
        return ResponseCache(self._filepath)

    def save(self, data: None) -> None:
        raise DatasetError(f"{self._filepath}: a result cache is written through by the nodes that load it")
