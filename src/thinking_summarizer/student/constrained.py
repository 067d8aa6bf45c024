"""Decoding held to the summary format: xgrammar compiles the student's grammar (its card's `grammar`, the
format's regex from `summary_format.format_regex`) for its tokenizer, and a logits processor masks every token
that would leave the format. The model still chooses every word; it cannot write a summary `parse` rejects or
stop before one is complete."""

from __future__ import annotations

from typing import Any

from transformers import LogitsProcessor, PreTrainedTokenizerBase


class FormatGrammar:
    """One student's compiled grammar; `processor()` is a fresh, stateful logits processor per `generate`."""

    def __init__(self, regex: str, tokenizer: PreTrainedTokenizerBase, vocab_size: int):
        import xgrammar as xgr

        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self.compiled: Any = xgr.GrammarCompiler(info).compile_regex(regex)

    def processor(self) -> LogitsProcessor:
        import xgrammar as xgr

        return xgr.contrib.hf.LogitsProcessor(self.compiled)
