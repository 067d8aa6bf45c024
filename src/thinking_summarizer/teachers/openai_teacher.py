"""Teachers behind an OpenAI-compatible API (Qwen-Max via DashScope, GPT-4 class, vLLM, `transformers serve`).

`OpenAITeacher` keeps many requests in flight through the project's one client (`openai_client`), gives a QC
failure `qc_retries` more tries with the error fed back, and caches each finished sample at once under the hash
of its request, so a killed run resumes without paying twice and two runs on one cache ask each sample once.
`OpenAIBatchTeacher` does the same work through the Batch API.

The structured-output mode is `response_format` in conf; `auto` starts with a JSON schema and switches to the
markdown form when the server refuses `response_format` or answers free text despite it (remembered per server
and model in the cache).
"""

from __future__ import annotations

import asyncio
import logging
import time

from tqdm.auto import tqdm

from thinking_summarizer.io.openai_client import (
    TRANSIENT, Body, CallFailed, OpenAICompatibleClient, Reply, ServerConfigError, client_settings,
)
from thinking_summarizer.io.result_cache import ResponseCache, request_key
from thinking_summarizer.schemas import Row, Summary
from thinking_summarizer.schemas.params.shared import ClientPolicy, SummaryQC, Vocabulary
from thinking_summarizer.schemas.params.teacher import TeacherClient, TeacherLabeling, TeacherPrompt
from thinking_summarizer.teachers import LabelOutcome
from thinking_summarizer.text.summary_qc import SummaryQCError, check_summary

log = logging.getLogger(__name__)
SUMMARY_SCHEMA = Summary.model_json_schema()
CONF_KEY = "teacher_labeling.openai"


class _ModeSwitched(Exception):
    """The structured-output mode changed: the sample's request (and so its cache key) is a new one."""


class OpenAITeacher:
    """Concurrent, rate-limited, retried, cached labelling through chat completions."""

    @classmethod
    def from_config(cls, cfg: TeacherLabeling, vocabulary: Vocabulary, qc: SummaryQC,
                    client: ClientPolicy) -> OpenAITeacher:
        return cls(client_settings(client, cfg.openai, TeacherClient), cfg.prompt, vocabulary, qc)

    def __init__(self, cfg: TeacherClient, prompt: TeacherPrompt, vocabulary: Vocabulary, qc: SummaryQC):
        self.cfg, self.prompt, self.vocabulary, self.qc = cfg, prompt, vocabulary, qc
        self.model_id, self.prompt_version = cfg.model, prompt.version
        self.cache = ResponseCache(cfg.cache_path)
        self.mode_note = f"response_format:{cfg.base_url}:{cfg.model}"
        self.auto = cfg.response_format == "auto"
        self.mode = (self.cache.note(self.mode_note) or "json_schema") if self.auto else cfg.response_format

    # --- requests ----------------------------------------------------------------------------------------

    def _system(self) -> str:
        instruction = self.prompt.format_markdown if self.mode == "markdown" else self.prompt.format_json
        return f"{self.prompt.system.strip()}\n\n{instruction.strip()}"

    def _first_turn(self, thinking: str) -> list[dict[str, str]]:
        categories = ", ".join(self.vocabulary.categories)
        return [{"role": "user", "content": self.prompt.user.format(thinking=thinking, categories=categories)}]

    def _body(self, turns: list[dict[str, str]]) -> Body:
        body = {"model": self.model_id, "messages": [{"role": "system", "content": self._system()}, *turns],
                "temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens}
        if self.mode == "json_schema":
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "summary", "schema": SUMMARY_SCHEMA}}
        elif self.mode == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    def _key(self, thinking: str) -> str:
        """The cache key of a sample: the hash of the first request exactly as it would be sent."""
        return request_key(self._body(self._first_turn(thinking)))

    def _switch_to_markdown(self, why: str) -> None:
        if self.mode != "markdown":
            log.warning("%s: %s; asking for the markdown form from now on", self.cfg.base_url, why)
            self.mode = "markdown"
            self.cache.note(self.mode_note, "markdown")

    def _judge(self, reply: Reply) -> Summary:
        if reply.refusal:
            raise SummaryQCError("refusal", reply.refusal[:200])
        if reply.finish_reason == "length":
            raise SummaryQCError("truncated", "the answer was cut off (finish_reason=length)")
        if reply.finish_reason == "content_filter":
            raise SummaryQCError("refusal", "the answer was filtered (finish_reason=content_filter)")
        return check_summary(reply.content, self.vocabulary, self.qc)

    def _free_text_in_json_mode(self, reply: Reply, asked_in: str) -> bool:
        """Text that is not JSON where JSON was asked for; an empty answer (filtered, or a stream with no data) says
        nothing about the server's modes."""
        text = reply.content.strip()
        return self.auto and asked_in != "markdown" and not reply.refusal and bool(text) and \
            not text.lstrip("`").removeprefix("json").strip().startswith("{")

    def _feedback(self, reply: Reply, err: SummaryQCError) -> list[dict[str, str]]:
        return [{"role": "assistant", "content": reply.content},
                {"role": "user", "content": self.prompt.retry.format(error=str(err))}]

    @staticmethod
    def _count(outcome: LabelOutcome, reply: Reply, calls: int) -> None:
        outcome.calls += calls
        for k, v in reply.usage.items():
            outcome.usage[k] += v

    async def _label(self, client: OpenAICompatibleClient, outcome: LabelOutcome, thinking: str) -> LabelOutcome:
        """Ask (and re-ask after a QC failure) until the summary passes; calls and tokens add up in `outcome`."""
        turns = self._first_turn(thinking)
        for _ in range(1 + self.cfg.qc_retries):
            asked_in = self.mode  # requests in flight may see another sample switch the mode
            try:
                reply, calls = await client.chat(self._body(turns))
            except CallFailed as err:
                outcome.calls += err.calls
                if outcome.reason:  # a complete answer was paid for and judged: it stays this sample's fate
                    outcome.detail += f" (asking again failed: {err.reason})"
                else:
                    outcome.reason, outcome.detail = err.reason, err.detail
                return outcome
            except ServerConfigError as err:
                if self.auto and asked_in != "markdown" and "response_format" in str(err):
                    self._switch_to_markdown(f"the server refuses response_format ({err})")
                    raise _ModeSwitched from err
                raise
            self._count(outcome, reply, calls)
            free_text = self._free_text_in_json_mode(reply, asked_in)
            try:
                outcome.summary = self._judge(reply).model_dump()  # a free-text answer that parses is used
                outcome.status, outcome.reason, outcome.detail = "labelled", "", ""
                if free_text:
                    self._switch_to_markdown("the server ignores response_format (it answered in markdown)")
                return outcome
            except SummaryQCError as err:
                if free_text:  # asked again in the markdown form
                    self._switch_to_markdown("the server ignores response_format (it answered free text)")
                    raise _ModeSwitched from err
                outcome.reason, outcome.detail = err.reason, err.detail
                turns = turns + self._feedback(reply, err)
        return outcome

    # --- the run -----------------------------------------------------------------------------------------

    def _from_cache(self, hit: Row, sample_id: str) -> LabelOutcome:
        """A cached outcome: paid for before, so no calls and no tokens in this run's usage."""
        return LabelOutcome(**{**hit, "sample_id": sample_id, "cached": True, "calls": 0,
                               "usage": {"prompt_tokens": 0, "completion_tokens": 0}})

    async def _one(self, client: OpenAICompatibleClient, gate: asyncio.Semaphore, sample_id: str,
                   thinking: str) -> LabelOutcome:
        outcome = LabelOutcome(sample_id, "rejected")  # also counts requests that a mode switch made moot
        while True:
            key = self._key(thinking)
            if (hit := self.cache.get(key)) is not None:
                return self._from_cache(hit, sample_id)
            async with gate:  # claimed only when about to ask, so another process takes the samples not yet begun
                if not self.cache.claim(key, self.cfg.claim_lease_s):
                    claimed_elsewhere = True
                elif (hit := self.cache.get(key)) is not None:  # answered elsewhere between our look and our claim
                    self.cache.release(key)
                    return self._from_cache(hit, sample_id)
                else:
                    claimed_elsewhere = False
                    try:
                        await self._label(client, outcome, thinking)
                    except _ModeSwitched:
                        self.cache.release(key)
                        continue
                    except BaseException:
                        self.cache.release(key)
                        raise
            if claimed_elsewhere:  # another process is asking for it: its answer will be in the cache
                await asyncio.sleep(self.cfg.claim_poll_s)
                continue
            if outcome.reason in TRANSIENT:
                self.cache.release(key)  # asked again on a rerun
            else:
                self.cache.put(key, outcome.to_dict())
            return outcome

    async def _label_all(self, items: list[tuple[str, str]]) -> list[LabelOutcome]:
        bar = tqdm(total=len(items), desc=f"teacher {self.model_id}", unit="sample")
        gate = asyncio.Semaphore(self.cfg.concurrency)
        async with OpenAICompatibleClient(self.cfg, CONF_KEY) as client:

            async def one(sample_id: str, thinking: str) -> LabelOutcome:
                try:
                    return await self._one(client, gate, sample_id, thinking)
                except (ServerConfigError, asyncio.CancelledError):
                    raise
                except Exception as err:  # one sample's surprise must not cost the others their answers
                    log.exception("Labelling %s failed", sample_id)
                    return LabelOutcome(sample_id, "rejected", reason="internal_error",
                                        detail=f"{type(err).__name__}: {str(err)[:200]}")
                finally:
                    bar.update()

            try:
                return list(await asyncio.gather(*(one(sid, text) for sid, text in items)))
            finally:
                bar.close()

    def label_all(self, items: list[tuple[str, str]]) -> list[LabelOutcome]:
        """Label every (sample_id, thinking); cached samples cost no call."""
        started = time.perf_counter()
        try:
            outcomes = asyncio.run(self._label_all(items))
        finally:
            self.cache.close()
        elapsed = time.perf_counter() - started
        log.info("Teacher labelled %d samples in %.1f s (%.1f samples/s, %d API calls)", len(items), elapsed,
                 len(items) / max(elapsed, 1e-9), sum(o.calls for o in outcomes))
        return outcomes


class OpenAIBatchTeacher(OpenAITeacher):
    """The same labelling through the Batch API (about half the price for large offline jobs)."""

    async def _batch_all(self, items: list[tuple[str, str]]) -> list[LabelOutcome]:
        outcomes: dict[str, LabelOutcome] = {}
        keys = {sid: self._key(text) for sid, text in items}
        turns: dict[str, list[dict[str, str]]] = {}
        for sid, text in items:
            hit = self.cache.get(keys[sid])
            if hit is None:
                turns[sid] = self._first_turn(text)
            else:
                outcomes[sid] = self._from_cache(hit, sid)
        async with OpenAICompatibleClient(self.cfg, CONF_KEY) as client:
            for _ in range(1 + self.cfg.qc_retries):  # the batch, then batches of retries with the QC error
                if not turns:
                    break
                replies, _ = await client.run_batch(
                    {sid: self._body(t) for sid, t in turns.items()}, self.cfg.batch_completion_window,
                    self.cfg.batch_poll_s, self.cfg.batch_deadline_s)
                retry = {}
                for sid, reply in replies.items():
                    outcome = outcomes.setdefault(sid, LabelOutcome(sid, "rejected"))
                    if isinstance(reply, CallFailed):
                        outcome.calls += 1
                        outcome.reason, outcome.detail = reply.reason, reply.detail
                        continue
                    self._count(outcome, reply, 1)
                    try:
                        outcome.summary = self._judge(reply).model_dump()
                        outcome.status, outcome.reason, outcome.detail = "labelled", "", ""
                        self.cache.put(keys[sid], outcome.to_dict())
                    except SummaryQCError as err:
                        outcome.reason, outcome.detail = err.reason, err.detail
                        retry[sid] = turns[sid] + self._feedback(reply, err)
                turns = retry
        for sid in turns:  # failed QC on every try: final, so cached too
            self.cache.put(keys[sid], outcomes[sid].to_dict())
        return [outcomes[sid] for sid, _ in items]

    def label_all(self, items: list[tuple[str, str]]) -> list[LabelOutcome]:
        try:
            return asyncio.run(self._batch_all(items))
        finally:
            self.cache.close()
