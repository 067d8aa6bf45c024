"""A tiny random Qwen2.5-Omni thinker (HumanOmniV2's architecture) with its processor."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    Qwen2_5OmniProcessor,
    Qwen2_5OmniThinkerConfig,
    Qwen2_5OmniThinkerForConditionalGeneration,
    WhisperFeatureExtractor,
)
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

from thinking_summarizer.schemas.params.tiny import TinyThinker
from thinking_summarizer.tiny_models import CHAT_SPECIALS, train_tokenizer

MEDIA_TOKENS = {
    "audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>",
    "image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>",
}
# the same placement of media placeholders as Qwen2.5-Omni's own template
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'video' %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif c['type'] == 'image' %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif c['type'] == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_omni(path: Path, recipe: TinyThinker, texts: list[str]) -> None:
    """Write a random thinker and a working processor (tokenizer trained on `texts`) to `path`."""
    tokenizer = train_tokenizer(texts, recipe.vocab_size, CHAT_SPECIALS + list(MEDIA_TOKENS.values()),
                                CHAT_TEMPLATE, MEDIA_TOKENS)
    pixels = {"min_pixels": recipe.min_pixels, "max_pixels": recipe.max_pixels, "patch_size": 14,
              "temporal_patch_size": 2, "merge_size": 2}
    processor = Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels), video_processor=Qwen2VLVideoProcessor(**pixels),
        # a short chunk: Whisper's default pads every clip to 30 s of features
        feature_extractor=WhisperFeatureExtractor(feature_size=recipe.audio.num_mel_bins, sampling_rate=16000,
                                                  chunk_length=recipe.audio.chunk_seconds),
        tokenizer=tokenizer, chat_template=CHAT_TEMPLATE,
    )
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in MEDIA_TOKENS.items()}
    text, vision, audio = recipe.text, recipe.vision, recipe.audio
    head_dim = text.hidden_size // text.heads
    config = Qwen2_5OmniThinkerConfig(
        audio_config={"d_model": audio.d_model, "encoder_attention_heads": audio.heads,
                      "encoder_ffn_dim": audio.ffn_dim or 2 * audio.d_model, "encoder_layers": audio.layers,
                      "num_mel_bins": audio.num_mel_bins, "output_dim": text.hidden_size},
        vision_config={"depth": vision.depth, "hidden_size": vision.hidden_size,
                       "intermediate_size": vision.intermediate_size or 2 * vision.hidden_size,
                       "num_heads": vision.heads, "out_hidden_size": text.hidden_size,
                       "fullatt_block_indexes": vision.full_attention_blocks or [vision.depth - 1]},
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": text.hidden_size, "num_hidden_layers": text.layers,
            "intermediate_size": text.intermediate_size or 2 * text.hidden_size, "num_attention_heads": text.heads,
            "num_key_value_heads": text.kv_heads, "max_position_embeddings": 32768, "tie_word_embeddings": False,
            # the three rotary sections (time, height, width) must cover head_dim / 2
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6,
                                "mrope_section": _mrope_section(head_dim // 2)},
            "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id,
        },
        audio_token_index=ids["audio_token"], image_token_index=ids["image_token"],
        video_token_index=ids["video_token"], audio_start_token_id=ids["audio_bos_token"],
        audio_end_token_id=ids["audio_eos_token"], vision_start_token_id=ids["vision_bos_token"],
        vision_end_token_id=ids["vision_eos_token"],
    )
    torch.manual_seed(recipe.seed)
    model = Qwen2_5OmniThinkerForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    processor.save_pretrained(path)


def _mrope_section(half: int) -> list[int]:
    time = half // 4
    return [time, (half - time) // 2, half - time - (half - time) // 2]
