"""A tiny random SAM3 video model (detector + tracker, the real `Sam3VideoModel` classes) and processor."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import processors
from transformers import PreTrainedTokenizerFast, Sam3VideoConfig, Sam3VideoModel, Sam3VideoProcessor
from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor
from transformers.models.sam3.configuration_sam3 import Sam3Config, Sam3ViTConfig, Sam3VisionConfig
from transformers.models.sam3.image_processing_sam3 import Sam3ImageProcessor

from thinking_summarizer.schemas.params.tiny import TinySam3
from thinking_summarizer.tiny_models import train_tokenizer


def _prompt_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A small CLIP-like BPE for prompt phrases (start and end tokens, padded to the processor's 32)."""
    roles = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}
    fast = train_tokenizer(texts, vocab_size, ["<|startoftext|>", "<|endoftext|>"], roles=roles)
    fast.model_max_length = 32
    fast._tokenizer.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", fast.bos_token_id), ("<|endoftext|>", fast.eos_token_id)])
    return fast


def build_tiny_sam3(path: Path, recipe: TinySam3, prompt_texts: list[str]) -> None:
    """Write a random `Sam3VideoModel` sized by the recipe, with a processor that works at its image size."""
    size, patch, hidden = recipe.image_size, 14, recipe.hidden_size
    grid = size // patch
    tokenizer = _prompt_tokenizer(prompt_texts, recipe.vocab_size)
    backbone = Sam3ViTConfig(
        hidden_size=recipe.backbone_hidden_size, num_hidden_layers=recipe.backbone_layers, num_attention_heads=4,
        intermediate_size=2 * recipe.backbone_hidden_size, image_size=size, pretrain_image_size=size,
        patch_size=patch, window_size=grid // 2, global_attn_indexes=[recipe.backbone_layers - 1])
    # the tracker's hidden size must equal the detector's FPN size (and be a multiple of 64 above 64)
    vision = Sam3VisionConfig(backbone_config=backbone, fpn_hidden_size=hidden, scale_factors=[4.0, 2.0, 1.0, 0.5],
                              backbone_feature_sizes=[[grid * 4] * 2, [grid * 2] * 2, [grid] * 2])
    small = {"num_attention_heads": 4, "intermediate_size": 2 * hidden}
    detector = Sam3Config(
        vision_config=vision,
        text_config={"vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "projection_dim": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 4, "max_position_embeddings": 32,
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        geometry_encoder_config={"hidden_size": hidden, "num_layers": 1, "mask_fuser_hidden_size": hidden,
                                 "mask_fuser_num_layers": 1, **small},
        detr_encoder_config={"hidden_size": hidden, "num_layers": 1, **small},
        detr_decoder_config={"hidden_size": hidden, "num_layers": 1, "num_queries": recipe.num_queries, **small},
        mask_decoder_config={"hidden_size": hidden, "num_upsampling_stages": 2},
    )
    tracker = {
        "vision_config": vision.to_dict(), "image_size": size,
        "prompt_encoder_config": {"hidden_size": hidden, "image_size": size, "patch_size": patch},
        "mask_decoder_config": {"hidden_size": hidden, "mlp_dim": 2 * hidden, "num_attention_heads": 4,
                                "iou_head_hidden_dim": hidden},
        "memory_attention_hidden_size": hidden, "memory_attention_num_layers": 1,
        "memory_attention_feed_forward_hidden_size": 2 * hidden, "memory_attention_rope_feat_sizes": [grid, grid],
        "memory_encoder_hidden_size": hidden, "memory_encoder_output_channels": 64,
        "mask_downsampler_embed_dim": hidden, "memory_fuser_embed_dim": hidden,
        "memory_fuser_intermediate_dim": 2 * hidden,
    }
    # random weights score around 0.25: low thresholds and a cap keep frames neither empty nor flooded
    config = Sam3VideoConfig(detector_config=detector.to_dict(), tracker_config=tracker,
                             low_res_mask_size=grid * 4, **recipe.thresholds.model_dump())
    torch.manual_seed(recipe.seed)
    model = Sam3VideoModel(config)
    # random weights call every tracked object occluded, so tracks would go blank after their first frame;
    # a positive object-score bias keeps them visible, as a trained tracker's are
    model.tracker_model.mask_decoder.pred_obj_score_head.proj_out.bias.data.fill_(recipe.object_score_bias)
    model.save_pretrained(path)
    image_size = {"height": size, "width": size}
    Sam3VideoProcessor(
        image_processor=Sam3ImageProcessor(size=image_size, mask_size={"height": grid * 4, "width": grid * 4}),
        video_processor=Sam2VideoVideoProcessor(size=image_size), tokenizer=tokenizer, target_size=size,
    ).save_pretrained(path)
