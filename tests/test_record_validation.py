"""Records checked by the catalog (Kedro's `validator:` on an entry, `schemas.validation.Records`)."""

import json

import pytest
import yaml
from kedro.io import DataCatalog

from thinking_summarizer.schemas.validation import Records

from .conftest import REPO

CATALOG = yaml.safe_load((REPO / "conf/base/catalog.yml").read_text())
CHECKED = {name: entry for name, entry in CATALOG.items() if "validator" in entry}
SAMPLE = {"sample_id": "s1", "source": "intentbench", "video_id": "v1", "video_path": "videos/v1.mp4",
          "question": "How does she feel?", "options": [], "problem_type": "free-form"}


def entry(name: str, tmp_path) -> dict:
    """conf/base's entry for `name`, its file under `tmp_path`."""
    return CATALOG[name] | {"filepath": str(tmp_path / f"{name}.json")}


def test_the_records_the_pipelines_hand_on_are_checked_against_their_models():
    assert {name: entry["validator"]["options"]["model"] for name, entry in CHECKED.items()} == {
        "unified_samples": "Sample", "sampled_samples": "Sample", "thinking_records": "ThinkingRecord",
        "teacher_labels": "TeacherLabel", "clean_examples": "Example", "val_examples": "Example",
        "ground_truth": "TruthScene"}
    for spec in CHECKED.values():
        Records(**spec["validator"]["options"])  # each names a model of schemas.records
    with pytest.raises(ValueError, match="'Sampel' is no record model"):
        Records("Sampel")


def test_a_bad_record_stops_the_save_naming_dataset_record_and_field_and_writes_nothing(tmp_path):
    catalog = DataCatalog.from_config({"sampled_samples": entry("sampled_samples", tmp_path)})
    bad = [SAMPLE, SAMPLE | {"sample_id": "s2", "problem_type": "essay"}, SAMPLE | {"sample_id": "s3", "question": None}]
    with pytest.raises(Exception, match=r"dataset 'sampled_samples' on save") as stopped:
        catalog.save("sampled_samples", bad)
    message = str(stopped.value)
    assert "2 field(s) not a Sample" in message
    assert "record 1 (s2): problem_type: Input should be 'multiple choice'" in message
    assert "record 2 (s3): question: Input should be a valid string" in message
    assert not list(tmp_path.rglob("*.json"))
    catalog.save("sampled_samples", [SAMPLE])
    assert catalog.load("sampled_samples") == [SAMPLE]  # passed on unchanged (no defaults filled in)


def test_a_hand_edited_file_is_named_when_loaded(tmp_path):
    """A file changed after it was written (or by another version of the project) fails where a node would read
    it, with the record and field, not inside the node."""
    (tmp_path / "ground_truth.json").write_text(json.dumps({"v1": {"scene_id": "scene_001", "masks": "m.npz",
                                                                   "objects": [{"object_id": 1}]}}))
    catalog = DataCatalog.from_config({"ground_truth": entry("ground_truth", tmp_path)})
    with pytest.raises(Exception, match=r"dataset 'ground_truth' on load") as stopped:
        catalog.load("ground_truth")
    assert "record v1: objects.0.category: Field required" in str(stopped.value)
