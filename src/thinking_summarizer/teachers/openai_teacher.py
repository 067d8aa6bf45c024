"""Teachers behind an OpenAI-compatible API (Qwen-Max via DashScope, GPT-4 class, vLLM).

`OpenAITeacher` keeps many requests in flight under request/token-per-minute limits, retries
429/5xx/timeouts/dropped connections with backoff and jitter (honouring Retry-After), and gives a
QC failure one more try with the error fed back. `OpenAIBatchTeacher` does the same work through
the Batch API. Both write each finished sample to the response cache at once, so a killed run
resumes without paying twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Any

import openai
from tqdm.auto import tqdm

from thinking_summarizer.schemas import Summary
from thinking_summarizer.summary_qc import SummaryQCError, check_summary
from thinking_summarizer.teachers import LabelOutcome
from thinking_summarizer.result_cache import ResponseCache, cache_key
from thinking_summarizer.teachers.ratelimit import TokenBucket

log = logging.getLogger(__name__)
SUMMARY_SCHEMA = Summary.model_json_schema()
TRANSIENT = {"rate_limited", "server_error", "timeout", "connection_error", "invalid_response"}


class _GaveUp(Exception):
    def __init__(self, reason: str, detail: str, calls: int = 0):
        self.reason, self.detail, self.calls = reason, detail, calls
        super().__init__(detail)


@dataclass
class _Reply:
    content: str
    finish_reason: str | None
    refusal: str | None
    usage: dict[str, int]


def _reply_from(body: dict[str, Any]) -> _Reply:
    """A chat-completions response body (as a dict) reduced to what QC needs."""
    choices = body.get("choices") or []
    if not choices:
        raise _GaveUp("invalid_response", "response has no choices")
    message = choices[0].get("message") or {}
    usage = body.get("usage") or {}
    return _Reply(message.get("content") or "", choices[0].get("finish_reason"), message.get("refusal"),
                  {"prompt_tokens": usage.get("prompt_tokens", 0), "completion_tokens": usage.get("completion_tokens", 0)})


class OpenAITeacher:
    """Concurrent, rate-limited, retried, cached labelling through chat completions."""

    def __init__(self, cfg: dict[str, Any], prompt: dict[str, Any], vocabulary: dict[str, Any], qc: dict[str, Any]):
        self.cfg, self.prompt, self.vocabulary, self.qc = cfg, prompt, vocabulary, qc
        self.model_id, self.prompt_version = cfg["model"], prompt["version"]
        self.mode = cfg["response_format"]  # json_schema | json_object | markdown
        self.cache = ResponseCache(cfg["cache_path"])

    def _api_key(self) -> str:
        key = os.environ.get(self.cfg["api_key_env"])
        if not key:
            raise RuntimeError(
                f"No API key for the teacher: set the environment variable {self.cfg['api_key_env']} "
                "or `teacher_api: {api_key: ...}` in conf/local/credentials.yml"
            )
        return key

    def _system(self) -> str:
        instruction = self.prompt["format_markdown" if self.mode == "markdown" else "format_json"]
        return f"{self.prompt['system'].strip()}\n\n{instruction.strip()}"

    def _first_turn(self, thinking: str) -> list[dict[str, str]]:
        categories = ", ".join(self.vocabulary["categories"])
        return [{"role": "user", "content": self.prompt["user"].format(thinking=thinking, categories=categories)}]

    def _request_body(self, turns: list[dict[str, str]]) -> dict[str, Any]:
        body = {"model": self.model_id, "messages": [{"role": "system", "content": self._system()}, *turns],
                "temperature": self.cfg["temperature"], "max_tokens": self.cfg["max_tokens"]}
        if self.mode == "json_schema":
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "summary", "schema": SUMMARY_SCHEMA}}
        elif self.mode == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    def _judge(self, reply: _Reply) -> Summary:
        if reply.refusal:
            raise SummaryQCError("refusal", reply.refusal[:200])
        if reply.finish_reason == "length":
            raise SummaryQCError("truncated", "the answer was cut off (finish_reason=length)")
        if reply.finish_reason == "content_filter":
            raise SummaryQCError("refusal", "the answer was filtered (finish_reason=content_filter)")
        return check_summary(reply.content, self.vocabulary, self.qc)

    def _feedback(self, reply: _Reply, err: SummaryQCError) -> list[dict[str, str]]:
        return [{"role": "assistant", "content": reply.content},
                {"role": "user", "content": self.prompt["retry"].format(error=str(err))}]

    def _backoff(self, attempt: int) -> float:
        base = self.cfg["backoff_base_s"] * 2 ** attempt
        return min(self.cfg["backoff_max_s"], base) * random.uniform(0.5, 1.5)

    def _estimate_tokens(self, body: dict[str, Any]) -> int:
        return sum(len(m["content"]) for m in body["messages"]) // 4 + self.cfg["max_tokens"]

    async def _request(self, client: openai.AsyncOpenAI, turns: list[dict[str, str]]) -> tuple[_Reply, int]:
        """One answer for `turns`, retrying transient failures; returns (reply, calls made)."""
        reason, detail = "server_error", ""
        for attempt in range(self.cfg["max_attempts"]):
            body = self._request_body(turns)
            await self.requests.take(1)
            await self.tokens.take(self._estimate_tokens(body))
            delay = self._backoff(attempt)
            try:
                # the raw body skips building pydantic models that would only be dumped again
                raw = await client.chat.completions.with_raw_response.create(**body)
                return _reply_from(raw.http_response.json()), attempt + 1
            except openai.BadRequestError as err:
                if "response_format" in body and "response_format" in str(err):
                    if self.mode != "markdown":
                        log.warning("Server rejects response_format=%s; asking for the markdown form from now on", self.mode)
                        self.mode = "markdown"
                    continue
                raise _GaveUp("api_error", f"HTTP 400: {err.message}", attempt + 1) from err
            except openai.RateLimitError as err:
                reason, detail = "rate_limited", "HTTP 429"
                retry_after = err.response.headers.get("retry-after")
                if retry_after:
                    delay = float(retry_after)
            except openai.APIStatusError as err:
                if err.status_code < 500:
                    raise _GaveUp("api_error", f"HTTP {err.status_code}: {err.message}", attempt + 1) from err
                reason, detail = "server_error", f"HTTP {err.status_code}"
            except openai.APITimeoutError:
                reason, detail = "timeout", f"no answer within {self.cfg['timeout_s']} s"
            except openai.APIConnectionError as err:
                reason, detail = "connection_error", type(err.__cause__ or err).__name__
            except (openai.APIError, _GaveUp, ValueError) as err:
                reason, detail = "invalid_response", str(err)[:200]
            await asyncio.sleep(delay)
        raise _GaveUp(reason, f"{detail}; gave up after {self.cfg['max_attempts']} attempts", self.cfg["max_attempts"])

    async def _label(self, client: openai.AsyncOpenAI, sample_id: str, thinking: str) -> LabelOutcome:
        outcome = LabelOutcome(sample_id, "rejected")
        turns = self._first_turn(thinking)
        for _ in range(2):  # the answer, then one retry with the QC error fed back
            try:
                reply, calls = await self._request(client, turns)
            except _GaveUp as err:
                outcome.reason, outcome.detail = err.reason, err.detail
                outcome.calls += err.calls
                return outcome
            outcome.calls += calls
            for k, v in reply.usage.items():
                outcome.usage[k] += v
            try:
                outcome.summary = self._judge(reply).model_dump()
                outcome.status, outcome.reason, outcome.detail = "labelled", "", ""
                return outcome
            except SummaryQCError as err:
                outcome.reason, outcome.detail = err.reason, err.detail
                turns = turns + self._feedback(reply, err)
        return outcome

    async def _label_all(self, items: list[tuple[str, str]]) -> list[LabelOutcome]:
        client = openai.AsyncOpenAI(api_key=self._api_key(), base_url=self.cfg["base_url"],
                                    timeout=self.cfg["timeout_s"], max_retries=0)
        self.requests = TokenBucket(self.cfg.get("requests_per_minute"))
        self.tokens = TokenBucket(self.cfg.get("tokens_per_minute"))
        gate = asyncio.Semaphore(self.cfg["concurrency"])
        bar = tqdm(total=len(items), desc=f"teacher {self.model_id}", unit="sample")

        async def one(sample_id: str, thinking: str) -> LabelOutcome:
            key = cache_key(self.model_id, self.prompt_version, thinking)
            hit = self.cache.get(key)
            if hit is None:
                async with gate:
                    outcome = await self._label(client, sample_id, thinking)
                if outcome.reason not in TRANSIENT:
                    self.cache.put(key, outcome.to_dict())
            else:
                outcome = LabelOutcome(**{**hit, "sample_id": sample_id, "cached": True, "calls": 0})
            bar.update()
            return outcome

        try:
            return await asyncio.gather(*(one(sid, text) for sid, text in items))
        finally:
            bar.close()
            await client.close()

    def label_all(self, items: list[tuple[str, str]]) -> list[LabelOutcome]:
        """Label every (sample_id, thinking); cached samples cost no call."""
        started = time.perf_counter()
        outcomes = asyncio.run(self._label_all(items))
        elapsed = time.perf_counter() - started
        log.info("Teacher labelled %d samples in %.1f s (%.1f samples/s, %d API calls)", len(items), elapsed,
                 len(items) / max(elapsed, 1e-9), sum(o.calls for o in outcomes))
        return outcomes


class OpenAIBatchTeacher(OpenAITeacher):
    """The same labelling through the Batch API (about half the price for large offline jobs)."""

    def _run_batch(self, client: openai.OpenAI, bodies: dict[str, dict[str, Any]]) -> dict[str, _Reply | _GaveUp]:
        lines = "".join(json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body}) + "\n"
                        for cid, body in bodies.items())
        upload = client.files.create(file=("batch.jsonl", lines.encode()), purpose="batch")
        batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                      completion_window=self.cfg["batch_completion_window"])
        log.info("Submitted batch %s with %d requests", batch.id, len(bodies))
        while batch.status not in ("completed", "failed", "expired", "cancelled"):
            time.sleep(self.cfg["batch_poll_s"])
            batch = client.batches.retrieve(batch.id)
        results: dict[str, _Reply | _GaveUp] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            for line in client.files.content(file_id).text.splitlines():
                row = json.loads(line)
                response = row.get("response") or {}
                try:
                    if response.get("status_code") != 200:
                        raise _GaveUp("api_error", json.dumps(row.get("error") or response.get("body"))[:200])
                    results[row["custom_id"]] = _reply_from(response["body"])
                except _GaveUp as err:
                    results[row["custom_id"]] = err
        for cid in bodies.keys() - results.keys():
            results[cid] = _GaveUp("api_error", f"batch {batch.id} ended {batch.status} without this request")
        return results

    def label_all(self, items: list[tuple[str, str]]) -> list[LabelOutcome]:
        client = openai.OpenAI(api_key=self._api_key(), base_url=self.cfg["base_url"],
                               timeout=self.cfg["timeout_s"], max_retries=self.cfg["max_attempts"])
        keys = {sid: cache_key(self.model_id, self.prompt_version, text) for sid, text in items}
        outcomes: dict[str, LabelOutcome] = {}
        turns: dict[str, list[dict[str, str]]] = {}
        for sid, text in items:
            hit = self.cache.get(keys[sid])
            if hit is None:
                turns[sid] = self._first_turn(text)
            else:
                outcomes[sid] = LabelOutcome(**{**hit, "sample_id": sid, "cached": True, "calls": 0})
        for _ in range(2):  # the batch, then one batch of retries with the QC error fed back
            if not turns:
                break
            replies = self._run_batch(client, {sid: self._request_body(t) for sid, t in turns.items()})
            retry = {}
            for sid, reply in replies.items():
                outcome = outcomes.setdefault(sid, LabelOutcome(sid, "rejected"))
                outcome.calls += 1
                if isinstance(reply, _GaveUp):
                    outcome.reason, outcome.detail = reply.reason, reply.detail
                    continue
                for k, v in reply.usage.items():
                    outcome.usage[k] += v
                try:
                    outcome.summary = self._judge(reply).model_dump()
                    outcome.status, outcome.reason, outcome.detail = "labelled", "", ""
                    self.cache.put(keys[sid], outcome.to_dict())
                except SummaryQCError as err:
                    outcome.reason, outcome.detail = err.reason, err.detail
                    retry[sid] = turns[sid] + self._feedback(reply, err)
            turns = retry
        for sid in turns:  # failed QC twice: final, so cached too
            self.cache.put(keys[sid], outcomes[sid].to_dict())
        return [outcomes[sid] for sid, _ in items]
