import copy
from collections import Counter

import pytest

from thinking_summarizer.pipelines.dataset_build.nodes import select_clean_examples, split_examples, to_training_forms
from thinking_summarizer.text.summary_format import category_lookup, parse

from .conftest import typed
from .openai_stub import summary_for

VOCABULARY, QC = typed("vocabulary"), typed("summary_qc")
SPLIT = typed("dataset_build.split")


def sample(sid: str, source: str = "bench", ptype: str = "multiple choice", video: str | None = None) -> dict:
    return {"sample_id": sid, "source": source, "problem_type": ptype, "video_id": video or f"v-{sid}"}


def label(sid: str, **changes) -> dict:
    summary = summary_for(sid)
    for path, value in changes.items():
        target = summary
        *head, last = path.split(".")
        for key in head:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value
    return {"sample_id": sid, "teacher": "t", "summary": summary}


def test_qc_keeps_clean_labels_and_names_every_rejection():
    labels = [
        label("ok"),
        label("placeholder", **{"objects.0.description": "a woman in a [color] coat"}),
        label("short", **{"objects.1.description": "the one on it"}),  # names nothing
        label("prompts", sam3_prompts=["woman", "desk"]),
        label("category", **{"objects.2.category": "spaceship"}),
        label("points", key_points=["only one"]),
    ]
    samples = [sample(lab["sample_id"], source="daily" if lab["sample_id"] == "ok" else "bench") for lab in labels]
    samples.append(sample("refused", source="daily"))
    thinking = [{"sample_id": s["sample_id"], "thinking": f"thinking of {s['sample_id']}"} for s in samples]
    teacher_rejects = [{"sample_id": "refused", "reason": "refusal", "detail": "no"}]
    kept, rejects, report = select_clean_examples(labels, teacher_rejects, thinking, samples, VOCABULARY, QC)
    assert [k["sample_id"] for k in kept] == ["ok"]
    assert kept[0]["thinking"] == "thinking of ok" and kept[0]["source"] == "daily"
    assert kept[0]["summary"]["objects"][0]["category"] == "person"  # "woman" normalised to the vocabulary
    assert parse(kept[0]["markdown"], category_lookup(VOCABULARY)).model_dump() == kept[0]["summary"]
    assert {r["sample_id"]: r["reason"] for r in rejects} == {
        "refused": "teacher/refusal", "placeholder": "placeholder", "short": "short_description",
        "prompts": "schema", "category": "unknown_category", "points": "schema"}
    assert report["keep_rate_by_source"] == {"bench": 0.0, "daily": 0.5}
    assert report["keep_rate"] == round(1 / 7, 4)


def examples(n_videos: int) -> list[dict]:
    rows = []
    for i in range(n_videos):
        source = ["bench", "daily", "train"][i % 3]
        ptype = "emer_ov_mc" if source == "train" else "multiple choice"
        for q in range(1 + (i % 4 == 0)):  # every fourth video is asked about twice
            rows.append(sample(f"s{i:03d}-{q}", source, ptype, video=f"video{i:03d}") | {"thinking": "t", "markdown": "m"})
    return rows


def test_split_is_stratified_keeps_videos_whole_and_is_reproducible():
    rows = examples(150)
    train, val, report = split_examples(rows, SPLIT)
    assert len(train) + len(val) == len(rows)
    assert not {r["video_id"] for r in train} & {r["video_id"] for r in val}
    for stratum, counts in report["videos_by_stratum"].items():
        assert counts["val"] == round((counts["train"] + counts["val"]) * SPLIT.val_fraction), stratum
    by_source = Counter(r["source"] for r in val)
    assert set(by_source) == {"bench", "daily", "train"}
    again, _, _ = split_examples(copy.deepcopy(rows[::-1]), SPLIT)
    assert sorted(r["sample_id"] for r in again) == sorted(r["sample_id"] for r in train)
    other, _, _ = split_examples(rows, SPLIT.model_copy(update={"seed": SPLIT.seed + 1}))
    assert sorted(r["sample_id"] for r in other) != sorted(r["sample_id"] for r in train)


def test_split_refuses_an_empty_train_split():
    with pytest.raises(ValueError, match="train split is empty"):
        split_examples(examples(3), SPLIT.model_copy(update={"val_fraction": 0.99}))


def test_both_training_forms_carry_the_same_example():
    kept, _, _ = select_clean_examples([label("a")], [], [{"sample_id": "a", "thinking": "She smiles."}],
                                       [sample("a")], VOCABULARY, QC)
    instruction_form, chat_form = to_training_forms(kept, "Summarise.")
    row, chat = instruction_form[0], chat_form[0]
    assert (row["instruction"], row["input"], row["output"]) == ("Summarise.", "She smiles.", kept[0]["markdown"])
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant"]
    assert [m["content"] for m in chat["messages"]] == [row["instruction"], row["input"], row["output"]]
    assert chat["sample_id"] == row["sample_id"] == "a" and chat["video_id"] == "v-a"
