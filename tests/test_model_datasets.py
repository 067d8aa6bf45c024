"""The models as catalog entries: bound to the run's parameters, loaded on first use, read-only."""

import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.io.core import DatasetError

from thinking_summarizer.errors import ConfigurationError
from thinking_summarizer.io.model_datasets import Sam3Dataset, TeacherDataset, ThinkerDataset, bind_models

from .conftest import REPO, run_params

CATALOG = yaml.safe_load((REPO / "conf/base/catalog.yml").read_text())
MODELS = {name: entry for name, entry in CATALOG.items() if "settings" in entry}


def test_every_model_entry_binds_to_the_runs_sections_and_only_those_load():
    """conf/base's model entries bound as a session binds them: each gets the sections it names, with the run's
    changes (an override reaches the model as it reaches a node); other datasets are not touched (loaded)."""
    params = run_params({"teacher_labeling": {"backend": "extractive", "extractive": {"max_people": 1}},
                         "video_segmentation": {"sam3": {"model": "/nowhere/sam3"}}})
    catalog = DataCatalog.from_config(MODELS | {"val_examples": CATALOG["val_examples"]})
    catalog["params:x"] = MemoryDataset(1)
    assert sorted(bind_models(catalog, params)) == ["sam3", "students", "teacher", "thinker"]
    thinker = catalog.load("thinker")
    assert thinker.settings == params.thinking_generation and thinker.generator.model_id == "reference"
    teacher = catalog.load("teacher")
    assert teacher.model_id.startswith("extractive") and teacher.cfg.max_people == 1
    assert catalog.load("students").backend == params.student_inference.backend


def test_a_model_loads_on_first_use_and_a_missing_one_is_named_then():
    """Loading the entry builds nothing: a SAM3 that is not there fails when a node first uses it, naming it (so
    a node that does not need a model never pays for it, nor fails on it)."""
    params = run_params({"video_segmentation": {"sam3": {"model": "/nowhere/sam3"}}})
    sam3 = Sam3Dataset(settings={"cfg": "video_segmentation.sam3"}).bind(params).load()
    with pytest.raises((OSError, ValueError), match="/nowhere/sam3"):
        sam3.model_id  # noqa: B018  (first use)


def test_an_entry_naming_no_section_and_an_unbound_entry_say_so():
    with pytest.raises(ConfigurationError, match=r"settings\.cfg names 'thinking_generaton'"):
        ThinkerDataset(settings={"cfg": "thinking_generaton", "client": "openai_client"}).bind(run_params())
    with pytest.raises(DatasetError, match="not bound to the run's parameters"):
        TeacherDataset(settings={"cfg": "teacher_labeling"}).load()
    with pytest.raises(DatasetError, match="read-only"):
        TeacherDataset(settings={}).save(object())


def test_the_trained_adapter_is_recorded_only_for_a_folder_that_holds_one(tmp_path):
    """`student_adapter`: a folder without an adapter or its card is refused at the save (the registry would
    otherwise fail minutes later); a real one loads back as a TrainedAdapter with its card, each run a version."""
    import json

    from thinking_summarizer.io.model_datasets import AdapterDataset, TrainedAdapter

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    dataset = AdapterDataset(filepath=str(tmp_path / "student_adapter.json"), version=None)
    with pytest.raises(DatasetError, match=r"adapter is not a trained adapter: no summarizer.json"):
        dataset.save(str(folder))
    (folder / "summarizer.json").write_text(json.dumps({"base_model": "base", "instruction": "Summarise."}))
    dataset.save(str(folder))
    assert dataset.load() == TrainedAdapter(str(folder), {"base_model": "base", "instruction": "Summarise."})


def test_an_error_while_building_a_model_comes_out_as_raised():
    """A backend that fails with an AttributeError inside its constructor (an API a transformers version lacks)
    shows that error, not a RecursionError of the lazy handle."""
    from thinking_summarizer.io.model_datasets import Lazy

    def build():
        raise AttributeError("module 'transformers' has no attribute 'Sam3VideoModel'")

    lazy = Lazy("SAM3", build)
    with pytest.raises(AttributeError, match="has no attribute 'Sam3VideoModel'"):
        lazy.track  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'Sam3VideoModel'"):
        lazy.track  # noqa: B018  (not cached as built: asked again)


def test_the_thinker_is_named_in_records_as_its_generator_names_itself():
    """Records and cache keys name the thinker from conf (`ThinkingGeneration.model_id`, so a cached run loads
    nothing); each backend's generator must name itself the same (the openai one is built without asking a server)."""
    from .conftest import model, typed

    for backend in ("reference", "openai"):
        settings = typed("thinking_generation").model_copy(update={"backend": backend})
        thinker = model(ThinkerDataset, cfg=settings, client=typed("openai_client"))
        assert thinker.model_id == thinker.generator.model_id, backend
