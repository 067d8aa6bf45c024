"""The models a run loads, as catalog entries (`thinker`, `teacher`, `students`, `sam3`): a node takes the model,
never the settings to build it, and never loads one itself. And the adapter training makes (`student_adapter`).

Each entry names the parameter sections its model is built from (`settings: {argument: section}`), and the
parameter hook binds them from the run's checked parameters when the catalog is created (`bind_models`), so
`--params` and `--env gpu` reach a model as they reach a node. Loading gives the model behind a lazy handle:
nothing (weights, a client, a server probe) is loaded until a node first uses it, so a node that ends up not
needing a model (the student where the teacher summarizes) never pays for it. Each model is built through the one
backend registry (`backends`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kedro.io import AbstractDataset, DataCatalog
from kedro.io.core import DatasetError

from thinking_summarizer.errors import ConfigurationError
from thinking_summarizer.io.datasets import JSONDataset
from thinking_summarizer.schemas.params import RunParams
from thinking_summarizer.schemas.params.thinking import ThinkingGeneration

log = logging.getLogger(__name__)


class Lazy:
    """A model built on first use; every public attribute is the built model's. An error while building (also an
    AttributeError from inside a backend) comes out as it was raised."""

    def __init__(self, name: str, build: Callable[[], Any]):
        self._name, self._build, self._model = name, build, None

    def _loaded(self) -> Any:
        if self._model is None:
            log.info("Loading the %s", self._name)
            self._model = self._build()
        return self._model

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):  # never built for copy, pickle or a probe of a private name
            raise AttributeError(attribute)
        return getattr(self._loaded(), attribute)


@dataclass
class Thinker:
    """HumanOmniV2 (`generator`, loaded when a sample is not in the cache yet) with the settings that are part of
    each generation's cache key (`model_id`, `settings.prompt`, `settings.generation`)."""

    settings: ThinkingGeneration
    generator: Any  # a generators.Generator behind `Lazy`

    @property
    def model_id(self) -> str:
        return self.settings.model_id


class ModelDataset(AbstractDataset[None, Any]):
    """A read-only catalog entry for a model; subclasses build it from the bound sections (`build`)."""

    role = "model"

    def __init__(self, settings: dict[str, str], metadata: dict[str, Any] | None = None):
        self.settings, self.metadata = settings, metadata
        self._bound: dict[str, Any] | None = None

    def bind(self, params: RunParams) -> ModelDataset:
        """Take this entry's sections from the run's parameters (a missing one names the entry and the key)."""
        bound = {}
        for argument, dotted in self.settings.items():
            value: Any = params
            for part in dotted.split("."):
                if not hasattr(value, part):
                    raise ConfigurationError(f"catalog entry for the {self.role}: settings.{argument} names "
                                             f"{dotted!r}, which is not a parameter section")
                value = getattr(value, part)
            bound[argument] = value
        return self.bind_sections(**bound)

    def bind_sections(self, **sections: Any) -> ModelDataset:
        """Build from these sections (the arguments of `build`)."""
        self._bound = sections
        return self

    def build(self, **sections: Any) -> Any:
        raise NotImplementedError

    def load(self) -> Any:
        if self._bound is None:
            raise DatasetError(f"the {self.role} dataset is not bound to the run's parameters: a Kedro session binds "
                               "it when it creates the catalog; code that builds its own catalog calls bind_models")
        sections = self._bound
        return Lazy(self.role, lambda: self.build(**sections))

    def save(self, data: Any) -> None:
        raise DatasetError(f"the {self.role} is read-only: it is loaded from its settings, not saved")

    def _describe(self) -> dict[str, Any]:
        return {"role": self.role, "settings": self.settings}


class ThinkerDataset(ModelDataset):
    """HumanOmniV2 by `thinking_generation.backend` (in-process, a server, or the reference text)."""

    role = "thinker"

    def build(self, cfg: ThinkingGeneration, client: Any) -> Any:
        from thinking_summarizer.generators import build_generator

        return build_generator(cfg, client)

    def load(self) -> Thinker:
        generator = super().load()  # an unbound entry says so here
        return Thinker(self._bound["cfg"], generator)


class TeacherDataset(ModelDataset):
    """The teacher by `teacher_labeling.backend` (the extractive one, or a large LLM behind an API)."""

    role = "teacher"

    def build(self, cfg: Any, vocabulary: Any, qc: Any, client: Any) -> Any:
        from thinking_summarizer.teachers import build_teacher

        return build_teacher(cfg, vocabulary, qc, client)


class StudentsDataset(ModelDataset):
    """The student registry and loader (`student.loader.StudentLoader`): a node asks it for a student by adapter
    folder or registry URI, for the version behind an alias, or for the untrained base."""

    role = "student registry"

    def build(self, inference: Any, client: Any) -> Any:
        from thinking_summarizer.student.loader import StudentLoader

        return StudentLoader(inference, client)


class Sam3Dataset(ModelDataset):
    """SAM3's video model and processor (`segmentation.sam3.Sam3Segmenter`)."""

    role = "SAM3"

    def build(self, cfg: Any) -> Any:
        from thinking_summarizer.segmentation.sam3 import Sam3Segmenter

        return Sam3Segmenter(cfg)


@dataclass(frozen=True)
class TrainedAdapter:
    """A trained LoRA adapter: its folder (weights, tokenizer) and its card (base model, instruction, grammar)."""

    path: str
    card: dict[str, Any]

    def load(self, device: str = "auto") -> Any:
        """The student it makes (base plus adapter), to summarize with."""
        from thinking_summarizer.student import from_adapter

        return from_adapter(self.path, device=device)


class AdapterDataset(JSONDataset):
    """The trained adapter (`student_adapter`). Saving the folder training wrote checks that it holds an adapter
    and its card and records both (versioned: each run's adapter); loading gives a `TrainedAdapter`. The weights
    stay in the training's own folder, which a rerun of the same config and data resumes or reuses."""

    def save(self, data: str) -> None:
        from thinking_summarizer.student import CARD, read_card

        folder = Path(data)
        missing = [name for name in ("adapter_config.json", CARD) if not (folder / name).is_file()]
        if missing:
            raise DatasetError(f"{folder} is not a trained adapter: no {' and no '.join(missing)}")
        super().save({"path": str(folder), "card": read_card(folder)})

    def load(self) -> TrainedAdapter:
        return TrainedAdapter(**super().load())


def bind_models(catalog: DataCatalog, params: RunParams) -> list[str]:
    """Bind every model entry of `catalog` to `params`; the names bound."""
    bound = []
    for name in catalog.keys():
        if not (catalog.get_type(name) or "").startswith(__name__):  # the others stay unloaded (lazy)
            continue
        dataset = catalog.get(name)
        if isinstance(dataset, ModelDataset):
            dataset.bind(params)
            bound.append(name)
    return bound
