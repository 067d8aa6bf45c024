"""The transformers backend end to end with a tiny random Qwen2.5-Omni thinker built offline."""


import pytest

from thinking_summarizer.demo.corpus import write_corpus
from thinking_summarizer.generators.omni_transformers import OmniTransformersGenerator
from thinking_summarizer.io.media import probe
from thinking_summarizer.pipelines.data_sampling.nodes import load_sources
from thinking_summarizer.pipelines.thinking_generation.nodes import gate_thinking

from thinking_summarizer.schemas.params.thinking import ThinkingGeneration

from .conftest import BASE_PARAMETERS, build_tiny, think, typed

PARAMS, CLIENT = typed("thinking_generation"), typed("openai_client")


@pytest.fixture(scope="module")
def demo_samples(tmp_path_factory) -> list[dict]:
    root = tmp_path_factory.mktemp("demo")
    demo = typed("demo_data")
    write_corpus(demo.model_copy(update={"root": str(root), "n_scenes": 12}))
    sources = {"intentbench": {"path": str(root / "intentbench.json"), "video_root": str(root / "videos"), "ratio": 1},
               "intenttrain": {"path": str(root / "intenttrain.json"), "video_root": str(root / "videos"), "ratio": 1}}
    sampling = typed("data_sampling", BASE_PARAMETERS["data_sampling"] | {"policy": {"on_invalid": "fail"}})
    samples, rejects = load_sources(sources, sampling)
    assert rejects == []
    return samples


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> ThinkingGeneration:
    model = build_tiny(tmp_path_factory, "thinker")
    return PARAMS.model_copy(update={
        "backend": "transformers", "transformers": PARAMS.transformers.model_copy(update={"model": str(model),
                                                                                       "batch_size": 3}),
        "generation": PARAMS.generation.model_copy(update={"max_new_tokens": 24})})


@pytest.fixture(scope="module")
def generator(config) -> OmniTransformersGenerator:
    return OmniTransformersGenerator(config.transformers, config.prompt, config.generation)


def test_one_video_with_sound_and_one_without(demo_samples, generator):
    loud = next(s for s in demo_samples if probe(s["video_path"]).has_audio)
    silent = next(s for s in demo_samples if not probe(s["video_path"]).has_audio)
    media = [generator._media(s) for s in (loud, silent)]
    assert media[0][1] is not None and media[0][1].size >= 16000 and media[1][1] is None
    assert media[0][0].shape[1:] == (120, 160, 3) and len(media[0][0]) % 2 == 0
    inputs = generator.prepare([loud, silent], media)
    tokenizer = generator.processor.tokenizer
    texts = tokenizer.batch_decode(inputs["input_ids"])
    # the system prompt, the options and the per-type answer instruction HumanOmniV2 was trained with
    for text, sample in zip(texts, (loud, silent)):
        assert "deeply analyze and interpret" in text
        assert sample["options"][0] in text and "within the <answer> </answer> tags" in text
    assert PARAMS.prompt.audio_preamble.strip() in texts[0]
    assert PARAMS.prompt.audio_preamble.strip() not in texts[1]
    # frames of both videos go in; audio features only for the one with a sound track
    assert inputs["video_grid_thw"].shape == (2, 3) and inputs["pixel_values_videos"].shape[0] > 0
    assert inputs["input_features"].shape[0] == 1
    audio_id = tokenizer.convert_tokens_to_ids("<|AUDIO|>")
    video_id = tokenizer.convert_tokens_to_ids("<|VIDEO|>")
    ids = inputs["input_ids"]
    assert (ids[0] == audio_id).sum() > 0 and (ids[1] == audio_id).sum() == 0
    assert (ids[0] == video_id).sum() > 0 and (ids[1] == video_id).sum() > 0
    assert (inputs["attention_mask"][:, -1] == 1).all(), "left padding: every prompt ends at the last position"


def test_batched_generation_equals_one_at_a_time(demo_samples, generator, config):
    assert generator.model_id == config.model_id  # the name records and cache keys give it, from conf
    batch = demo_samples[:3]
    together = generator.generate(batch)
    alone = [generator.generate([s])[0] for s in batch]
    assert [g.raw_text for g in together] == [g.raw_text for g in alone]
    assert all(g.tokens > 0 and g.raw_text and not g.error for g in together)


def test_generation_through_the_node_is_decoded_and_random_output_is_rejected(demo_samples, config, tmp_path, caplog):
    broken = tmp_path / "truncated.mp4"
    broken.write_bytes(open(demo_samples[0]["video_path"], "rb").read()[:300])
    work = demo_samples[:4] + [demo_samples[4] | {"sample_id": "broken", "video_path": str(broken)}]
    with caplog.at_level("INFO"):
        records = think(work, config, CLIENT, tmp_path)["shard-000-of-001"]
    assert "Loading the thinker" in caplog.text
    by_id = {r["sample_id"]: r for r in records}
    assert by_id["broken"]["error"].startswith("unreadable_video") and "truncated.mp4" in by_id["broken"]["error"]
    made = [r for r in records if r["sample_id"] != "broken"]
    assert all(r["raw_text"] and r["tokens"] > 0 and r["generator_id"] == config.transformers.model for r in made)
    kept, rejects, report = gate_thinking(records, work, config)
    assert kept == []
    assert report["rejected"] == {"no_tags": 4, "unreadable_video": 1}
    # a rerun with the same model, prompt and media regenerates nothing, and does not even load the model
    caplog.clear()
    with caplog.at_level("INFO"):
        again = think(work, config, CLIENT, tmp_path)["shard-000-of-001"]
    assert "5 samples, 5 already generated" in caplog.text and ": generated" not in caplog.text
    assert "Loading the thinker" not in caplog.text
    assert again == records


def test_video_frames_are_sampled_at_the_configured_rate(demo_samples, generator):
    # a demo video is 24 frames at 8 fps; at the configured 2 fps that is every 4th frame
    assert (probe(demo_samples[0]["video_path"]).num_frames, generator.cfg.video.fps) == (24, 2.0)
    frames, _ = generator._media(demo_samples[0])
    assert len(frames) == 6
