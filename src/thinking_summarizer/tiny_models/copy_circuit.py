"""A copying circuit written into a random Qwen2 at build time: the induction heads a pretrained base has and a
tiny one does not grow on 2 CPU cores (docs/learning.md: they form after a plateau, and only for the run
lengths seen, which is position, not content).

The residual stream is laid out in blocks of one head's width: `[token | previous token | free...]`.
- Layer 0, head 0 attends to the previous position only (its query and key are constant biases whose rotary
  phases peak at a distance of one) and writes that token's vector into the second block.
- With `second_token` > 0, layer 0, head 1 does the same at a distance of two and adds that token's vector, turned
  by a fixed random rotation, into the same block: the block then says "W X" rather than only "X".
- Layer 1, head 0 matches the current token (first block) against the previous-token block of every earlier
  position, on the rotary pairs slow enough to hold still over the context, and adds the vector of the token that
  followed the match: "after X came Y before, so Y now". With `second_token`, its query also carries the previous
  token (turned the same way, weighted by `second_token`), so "W X" is matched on both tokens: after "on the",
  the word that followed "jacket on the" rather than any "the".
The input embeddings are frozen and isotropic (the match needs distinct vectors), the output head is untied and
starts as their copy, so the copied vector is a vote for its token. Pre-training learns the language around the
circuit without moving what it reads or writes (`freeze_copy_circuit`); LoRA then learns what to copy.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Qwen2ForCausalLM

from thinking_summarizer.schemas.params.tiny import CopyCircuit


def _head_width(model: Qwen2ForCausalLM) -> int:
    cfg = model.config
    if cfg.num_hidden_layers < 2 or cfg.num_attention_heads < 2 or cfg.num_key_value_heads != cfg.num_attention_heads:
        raise ValueError("the copy circuit needs at least 2 layers and 2 heads, with as many key/value heads as heads")
    if cfg.tie_word_embeddings:
        raise ValueError("the copy circuit needs untied embeddings (tiny.model.tie_embeddings: false)")
    return cfg.hidden_size // cfg.num_attention_heads


def _rotary_frequencies(model: Qwen2ForCausalLM, width: int) -> torch.Tensor:
    theta = model.config.rope_parameters["rope_theta"]
    return 1.0 / theta ** (torch.arange(0, width, 2).float() / width)


@torch.no_grad()
def wire_copy_circuit(model: Qwen2ForCausalLM, cfg: CopyCircuit, seed: int) -> int:
    """Write the circuit into `model` (random weights elsewhere); the number of rotary dimensions it matches on."""
    width = _head_width(model)
    token, previous = slice(0, width), slice(width, 2 * width)
    frequencies = _rotary_frequencies(model, width)
    generator = torch.Generator().manual_seed(seed)
    embedding = model.model.embed_tokens.weight
    embedding.zero_()
    embedding[:, token] = torch.randn(embedding.shape[0], width, generator=generator) * cfg.embedding_std
    model.lm_head.weight.copy_(embedding)
    first, second = model.model.layers[0].self_attn, model.model.layers[1].self_attn

    # layer 0, head 0: constant query and key whose rotary phases agree at distance one
    strength = cfg.previous_token_strength
    first.q_proj.weight[:width] = 0
    first.q_proj.bias[:width] = torch.cat([strength * torch.cos(frequencies), -strength * torch.sin(frequencies)])
    first.k_proj.weight[:width] = 0
    first.k_proj.bias[:width] = torch.cat([torch.ones(width // 2), torch.zeros(width // 2)])
    first.v_proj.weight[:width] = 0
    first.v_proj.bias[:width] = 0
    first.v_proj.weight[:width, token] = torch.eye(width)
    first.o_proj.weight[:2 * width] = 0  # nothing else of layer 0 writes the two blocks
    first.o_proj.weight[:, :width] = 0
    first.o_proj.weight[previous, :width] = torch.eye(width)
    model.model.layers[0].mlp.down_proj.weight[:2 * width] = 0

    # layer 0, head 1: the token two back, turned by `turn`, into the previous-token block as well
    second_token, head1 = cfg.second_token, slice(width, 2 * width)
    first.o_proj.weight[:, head1] = 0
    if second_token:
        turn = torch.linalg.qr(torch.randn(width, width, generator=generator))[0]
        first.q_proj.weight[head1] = 0
        first.q_proj.bias[head1] = torch.cat([strength * torch.cos(2 * frequencies),
                                              -strength * torch.sin(2 * frequencies)])
        first.k_proj.weight[head1] = 0
        first.k_proj.bias[head1] = torch.cat([torch.ones(width // 2), torch.zeros(width // 2)])
        first.v_proj.weight[head1] = 0
        first.v_proj.bias[head1] = 0
        first.v_proj.weight[head1, token] = turn
        first.o_proj.weight[previous, head1] = torch.eye(width)

    # layer 1, head 0: the current token against the previous-token block, on the slow rotary pairs only
    slow = (frequencies < cfg.low_frequency).nonzero().flatten()
    dims = torch.cat([slow, slow + width // 2])
    projection = torch.linalg.qr(torch.randn(width, width, generator=generator))[0][:len(dims)]
    for linear in (second.q_proj, second.k_proj, second.v_proj):
        linear.weight[:width] = 0
        linear.bias[:width] = 0
    second.q_proj.weight[dims, token] = cfg.match_strength * projection
    if second_token:  # the previous token, turned as layer 0 turned the one two back
        second.q_proj.weight[dims, previous] = cfg.match_strength * second_token * projection @ turn
    second.k_proj.weight[dims, previous] = projection
    second.v_proj.weight[:width, token] = torch.eye(width)
    second.o_proj.weight[:, :width] = 0
    second.o_proj.weight[token, :width] = cfg.copy_gain * torch.eye(width)
    return len(dims)


def freeze_copy_circuit(model: Qwen2ForCausalLM) -> list[torch.utils.hooks.RemovableHandle]:
    """Keep the circuit through full fine-tuning: frozen embeddings and norms it reads through, and zero gradients
    on its weights and on whatever else writes its two blocks. Remove the returned hooks afterwards."""
    width = _head_width(model)
    first, second = model.model.layers[0], model.model.layers[1]
    for param in (model.model.embed_tokens.weight, first.input_layernorm.weight, second.input_layernorm.weight,
                  first.self_attn.q_proj.weight, first.self_attn.k_proj.weight):
        param.requires_grad_(False)
    handles = []

    def keep(param: torch.nn.Parameter, zero: Any) -> None:
        mask = torch.ones_like(param)
        mask[zero] = 0
        handles.append(param.register_hook(lambda grad: grad * mask))

    head, blocks = slice(0, width), slice(0, 2 * width)
    for param in (first.self_attn.q_proj.bias, first.self_attn.k_proj.bias, first.self_attn.v_proj.weight,
                  first.self_attn.v_proj.bias):
        keep(param, blocks)  # both of layer 0's heads: the second one writes the token two back (`second_token`)
    for param in (second.self_attn.q_proj.bias, second.self_attn.k_proj.bias, second.self_attn.v_proj.bias):
        keep(param, head)
    keep(first.self_attn.o_proj.weight, blocks)
    keep(first.mlp.down_proj.weight, blocks)
    for linear in (second.self_attn.q_proj, second.self_attn.k_proj, second.self_attn.v_proj):
        keep(linear.weight, (head, blocks))  # what the induction head reads stays; it may learn to read more
    keep(second.self_attn.o_proj.weight, (slice(None), head))
    return handles
