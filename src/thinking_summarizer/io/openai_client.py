"""One client for every OpenAI-compatible server the project calls (the teacher, HumanOmniV2 behind vLLM, a served
student): one retry policy, one key rule, one reading of replies and errors.

- Retries 429, 5xx, timeouts, dropped connections and malformed bodies (`invalid_response`) with backoff and
  jitter, honouring `Retry-After` in seconds or as an HTTP date, never longer than `max_retry_after_s`.
- Timeouts are retried at most `max_timeout_attempts` times, and timeouts or 429s halve the requests in flight
  (then they grow back one at a time): a slow server is not buried under retries.
- Requests are streamed when `stream` is on, so a server stops generating once its client has given up.
- A 4xx that says the configuration is wrong (wrong model, unknown field, bad key, wrong URL) raises
  `ServerConfigError` with the server's own message: the run stops, and nothing is cached as the sample's fate.
- `base_url` is required (no default host); redirects are never followed; the key comes from the environment
  variable named by `api_key_env`, and may be absent only for a server on this machine.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import ipaddress
import json
import logging
import os
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from thinking_summarizer.errors import UserFacingError
from thinking_summarizer.io.ratelimit import TokenBucket
from thinking_summarizer.schemas.params.shared import ClientPolicy, ClientSettings, Endpoint

log = logging.getLogger(__name__)
Body = dict[str, Any]  # a chat-completions request as JSON
S = TypeVar("S", bound=ClientSettings)
TRANSIENT = {"rate_limited", "server_error", "timeout", "connection_error", "invalid_response", "server_unavailable"}


def client_settings(shared: ClientPolicy, section: Endpoint, into: type[S]) -> S:
    """A backend's client settings (`into`: its section's fields and the policy's): the shared policy
    (`params:openai_client`), overridden by what its own section sets."""
    return into.model_validate(shared.model_dump() | section.model_dump(exclude_unset=True))


class ServerConfigError(UserFacingError, RuntimeError):
    """The server says the request can never succeed as configured; the message is the server's own."""


class CallFailed(Exception):
    """A request that ended without a usable answer; `reason` is a short code for reports."""

    def __init__(self, reason: str, detail: str, calls: int = 0, retry_after: float | None = None):
        self.reason, self.detail, self.calls, self.retry_after = reason, detail, calls, retry_after
        super().__init__(f"{reason}: {detail}")


@dataclass
class Reply:
    content: str
    finish_reason: str | None = None
    refusal: str | None = None
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})


def _count(value: Any) -> int:
    """A token count as servers send it (an int, sometimes a string or null); 0 when it is not a number."""
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def reply_from(body: Any) -> Reply:
    """A chat-completions body reduced to what callers need; a body of the wrong shape is `invalid_response`."""
    if not isinstance(body, dict):
        raise CallFailed("invalid_response", f"the reply body is {type(body).__name__}, not an object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise CallFailed("invalid_response", f"the reply has no choices: {json.dumps(body)[:200]}")
    message = choices[0].get("message") or {}
    if not isinstance(message, dict):
        raise CallFailed("invalid_response", "choices[0].message is not an object")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise CallFailed("invalid_response", f"message content is {type(content).__name__}, not text")
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    refusal = message.get("refusal")
    return Reply(content or "", choices[0].get("finish_reason"), refusal if isinstance(refusal, str) else None,
                 {"prompt_tokens": _count(usage.get("prompt_tokens")),
                  "completion_tokens": _count(usage.get("completion_tokens"))})


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds (RFC 9110 allows a number of seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


_KEYS: set[str] = set()  # every API key a client of this process was given: never echoed into a log or a store
_KEY_SHAPES = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}|(?<=Bearer )[^\s\"',]+", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with every configured API key, and anything shaped like one (`sk-...`, `Bearer ...`), masked."""
    for key in _KEYS:
        text = text.replace(key, "[redacted]")
    return _KEY_SHAPES.sub("[redacted]", text)


def server_message(text: str) -> str:
    """The server's own words (keys it echoed masked): OpenAI's `error.message`, FastAPI's `detail`, or the start
    of the body."""
    return redact(_server_words(text))


def _server_words(text: str) -> str:
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return text.strip()[:300]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
        if isinstance(error, str):
            return error[:500]
        if "detail" in body:
            return json.dumps(body["detail"])[:500] if not isinstance(body["detail"], str) else body["detail"][:500]
        if body.get("message"):
            return str(body["message"])[:500]
    return text.strip()[:300]


def is_local(url: str) -> bool:
    """A server on this machine (loopback address or localhost)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


CAPACITY_MARGIN = 0.8  # of the answers a server gave within one timeout: what is sent at once after a timeout wave


class AdaptiveLimit:
    """Requests in flight: halved on congestion (timeouts, 429), grown by one after as many successes.

    Congestion is answered once per wave: requests that were already in flight when the limit was last halved
    (`since` older than `epoch`) report the same overload, so a burst of 64 timeouts halves the limit once, not
    down to 1. When the caller knows how many answers the server gave within one timeout (`capacity`: a server
    that generates one request at a time gives timeout / latency), the limit drops to what it can finish in time."""

    def __init__(self, maximum: int):
        self.maximum = self.limit = max(1, int(maximum))
        self.active = self.successes = self.epoch = 0
        self.cond = asyncio.Condition()

    async def __aenter__(self) -> None:
        async with self.cond:
            await self.cond.wait_for(lambda: self.active < self.limit)
            self.active += 1

    async def __aexit__(self, *exc: Any) -> None:
        async with self.cond:
            self.active -= 1
            self.cond.notify_all()

    def congested(self, since: int, capacity: int = 0) -> None:
        """A request sent at `epoch == since` met congestion; `capacity`: answers within one timeout, if known."""
        if since < self.epoch:
            return
        self.epoch += 1
        if self.limit > 1:
            fits = max(1, int(capacity * CAPACITY_MARGIN)) if capacity else self.limit  # 1 answer: 1 at a time
            self.limit = max(1, min(self.limit // 2, fits))
            log.warning("Server congested: at most %d requests in flight now", self.limit)
        self.successes = 0

    def succeeded(self) -> None:
        self.successes += 1
        if self.limit < self.maximum and self.successes >= self.limit:
            self.limit, self.successes = self.limit + 1, 0


class OpenAICompatibleClient:
    """Use as `async with OpenAICompatibleClient(cfg, "teacher_labeling.openai") as client:`; `name` is the conf
    key that errors point at."""

    def __init__(self, cfg: ClientSettings, name: str):
        self.cfg, self.name = cfg, name
        base_url = cfg.base_url
        if not base_url or urlsplit(str(base_url)).scheme not in ("http", "https"):
            raise ServerConfigError(f"{name}.base_url is required: the http(s) URL of the OpenAI-compatible server "
                                    f"(got {base_url!r}); there is no default host")
        self.base_url = str(base_url).rstrip("/")
        self.headers = {"Content-Type": "application/json"}
        key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
            _KEYS.add(key)
        elif not is_local(self.base_url):
            raise ServerConfigError(
                f"No API key for {self.base_url}: set the environment variable {cfg.api_key_env} "
                f"(or its entry in conf/local/credentials.yml); only a server on this machine may go without one")
        self.limit = AdaptiveLimit(cfg.concurrency)
        self.requests = TokenBucket(cfg.requests_per_minute)
        self.tokens = TokenBucket(cfg.tokens_per_minute)
        self.config_error = re.compile("|".join(cfg.config_error_patterns), re.IGNORECASE)
        self.sample_error = re.compile("|".join(cfg.sample_error_patterns), re.IGNORECASE)
        timeout = httpx.Timeout(cfg.timeout_s, connect=cfg.connect_timeout_s)
        self.http = httpx.AsyncClient(timeout=timeout, follow_redirects=False,
                                      limits=httpx.Limits(max_connections=None, max_keepalive_connections=64))
        self.fresh_calls = 0
        self.timeouts_in_a_row = 0
        self.started = self.last_answer = time.monotonic()
        self.answered_at: collections.deque[float] = collections.deque()  # when the last answers came
        self.unavailable: str | None = None  # why every further request fails at once (the circuit is open)

    async def __aenter__(self) -> OpenAICompatibleClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.http.aclose()

    # --- errors ------------------------------------------------------------------------------------------

    def _status_error(self, status: int, text: str, headers: httpx.Headers) -> Exception:
        message = server_message(text)
        where = f"{self.name} ({self.base_url})"
        if 300 <= status < 400:
            return ServerConfigError(f"{where}: the server redirects to {redact(headers.get('location') or '')!r}; redirects are "
                                     "not followed (the request would go elsewhere): point base_url at the real server")
        retry_after = retry_after_seconds(headers.get("retry-after"))
        if status == 429:
            return CallFailed("rate_limited", f"HTTP 429: {message}", retry_after=retry_after)
        if status >= 500 or status == 408:
            return CallFailed("server_error", f"HTTP {status}: {message}", retry_after=retry_after)
        if status == 400 and self.sample_error.search(message):  # e.g. this prompt is longer than the context
            return CallFailed("prompt_too_long", f"HTTP 400: {message}")
        if status in (401, 403, 404, 405, 422) or (status == 400 and self.config_error.search(message)):
            return ServerConfigError(f"{where} answered HTTP {status}: {message}")
        return CallFailed("api_error", f"HTTP {status}: {message}")  # about this sample (e.g. too long a prompt)

    # --- one request -------------------------------------------------------------------------------------

    async def _read_stream(self, response: httpx.Response) -> Reply:
        """Accumulate server-sent chat-completion chunks into one reply."""
        parts, finish, refusal, usage, size = [], None, None, {}, 0
        async for line in response.aiter_lines():
            size += len(line)
            if size > self.cfg.max_response_bytes:
                raise CallFailed("oversized_reply", f"the reply passed {self.cfg.max_response_bytes} bytes")
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                continue  # read on to the end, so the server finishes its response cleanly
            try:
                chunk = json.loads(data)
            except (ValueError, RecursionError) as err:
                raise CallFailed("invalid_response", f"unreadable stream chunk {data[:80]!r}") from err
            if not isinstance(chunk, dict):
                raise CallFailed("invalid_response", f"stream chunk is {type(chunk).__name__}")
            if isinstance(chunk.get("error"), (dict, str)):
                raise CallFailed("server_error", f"error in stream: {server_message(json.dumps(chunk))}")
            if isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                delta = (choice.get("delta") or {}) if isinstance(choice, dict) else {}
                if isinstance(delta.get("content"), str):
                    parts.append(delta["content"])
                if isinstance(delta.get("refusal"), str):
                    refusal = (refusal or "") + delta["refusal"]
                finish = choice.get("finish_reason") or finish
        return Reply("".join(parts), finish, refusal, {"prompt_tokens": _count(usage.get("prompt_tokens")),
                                                       "completion_tokens": _count(usage.get("completion_tokens"))})

    async def _attempt(self, body: Body) -> Reply:
        url = f"{self.base_url}/chat/completions"
        stream = bool(self.cfg.stream)
        if stream:
            body = body | {"stream": True} | ({"stream_options": self.cfg.stream_options}
                                             if self.cfg.stream_options else {})
        async with asyncio.timeout(self.cfg.timeout_s):  # the whole answer, not just each read
            async with self.http.stream("POST", url, json=body, headers=self.headers) as response:
                if response.status_code != 200:
                    text = (await response.aread()).decode(errors="replace")
                    raise self._status_error(response.status_code, text, response.headers)
                if stream and response.headers.get("content-type", "").startswith("text/event-stream"):
                    return await self._read_stream(response)
                raw = bytearray()
                async for piece in response.aiter_bytes():
                    raw += piece
                    if len(raw) > self.cfg.max_response_bytes:
                        raise CallFailed("oversized_reply", f"the reply passed {self.cfg.max_response_bytes} bytes")
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError) as err:
            raise CallFailed("invalid_response", f"the reply is not JSON (or nested too deep): {bytes(raw[:80])!r}") from err
        return reply_from(parsed)

    def _answers_within(self, seconds: float) -> int:
        """How many answers came in the last `seconds`: what the server can finish within one timeout."""
        while self.answered_at and self.answered_at[0] < time.monotonic() - seconds:
            self.answered_at.popleft()
        return len(self.answered_at)

    def _check_available(self) -> None:
        """Fail at once, leaving the sample for a rerun, once the server looks hung (`circuit_breaker_timeouts`
        timeouts in a row, from any requests, and no answer to any request for a whole `timeout_s`) or the run's
        `deadline_s` has passed: a hung server costs minutes, not samples x timeout. A server that keeps answering
        while requests time out is queueing them (one generation at a time): those are asked again, fewer at once."""
        if self.unavailable is None:
            limit, deadline = self.cfg.circuit_breaker_timeouts, self.cfg.deadline_s
            silent = time.monotonic() - self.last_answer
            if limit and self.timeouts_in_a_row >= limit and silent >= self.cfg.timeout_s:
                self.unavailable = (f"{self.base_url} timed out {self.timeouts_in_a_row} times in a row and answered "
                                    f"nothing for {silent:.0f} s (timeout_s {self.cfg.timeout_s}): it looks hung")
            elif deadline and time.monotonic() - self.started > deadline:
                self.unavailable = f"the deadline of {deadline} s for {self.name} has passed"
            if self.unavailable:
                log.warning("%s; the remaining samples are left for a rerun", self.unavailable)
        if self.unavailable:
            raise CallFailed("server_unavailable", self.unavailable)

    def _backoff(self, attempt: int) -> float:
        base = self.cfg.backoff_base_s * 2 ** attempt
        jitter = self.cfg.backoff_jitter  # spread, so clients that failed together do not retry together
        return min(self.cfg.backoff_max_s, base) * random.uniform(1 - jitter, 1 + jitter)

    async def chat(self, body: Body) -> tuple[Reply, int]:
        """One answer for a chat-completions `body`, retrying what is transient; returns (reply, calls made).

        Raises `CallFailed` when the retries are spent or the failure is about this request alone, and
        `ServerConfigError` when the server says the configuration is wrong."""
        # what the tokens-per-minute limit is charged before the reply says (no tokenizer on the client side)
        chars = sum(len(json.dumps(m.get("content"))) for m in body.get("messages", []))
        estimate = int(chars / self.cfg.chars_per_token) + int(body.get("max_tokens") or 0)
        timeouts, same_errors = 0, 0
        failure = CallFailed("server_error", "no attempt made")
        for attempt in range(self.cfg.max_attempts):
            self._check_available()
            await self.requests.take(1)
            await self.tokens.take(estimate)
            wait = self._backoff(attempt)
            sent_in = self.limit.epoch  # the congestion wave this request is sent into (read again once it is let in)
            try:
                async with self.limit:
                    sent_in = self.limit.epoch
                    self.fresh_calls += 1
                    reply = await self._attempt(body)
                self.limit.succeeded()
                self.timeouts_in_a_row, self.last_answer = 0, time.monotonic()
                self.answered_at.append(self.last_answer)
                return reply, attempt + 1
            except ServerConfigError:
                raise
            except CallFailed as err:
                same_errors = same_errors + 1 if (err.reason, err.detail) == (failure.reason, failure.detail) else 1
                failure = err
                if err.reason not in TRANSIENT:
                    raise CallFailed(err.reason, err.detail, attempt + 1) from err
                if err.reason == "server_error" and same_errors >= self.cfg.same_error_attempts:
                    raise CallFailed(err.reason, f"{err.detail} ({same_errors} times in a row, so not a passing "
                                     "fault: the server's log says why)", attempt + 1) from err
                if err.reason == "rate_limited":
                    self.limit.congested(sent_in)
            except (TimeoutError, httpx.TimeoutException):
                timeouts += 1
                self.timeouts_in_a_row += 1
                self.limit.congested(sent_in, self._answers_within(self.cfg.timeout_s))
                failure = CallFailed("timeout", f"no complete answer within {self.cfg.timeout_s} s")
                if timeouts >= self.cfg.max_timeout_attempts:
                    raise CallFailed("timeout", f"{failure.detail}, {timeouts} times", attempt + 1) from None
            except httpx.HTTPError as err:  # refused, reset, dropped mid-answer, protocol errors
                failure = CallFailed("connection_error", f"{type(err).__name__}: {redact(str(err))[:160]}")
            log.debug("Attempt %d at %s failed (%s: %s)", attempt + 1, self.base_url, failure.reason, failure.detail)
            if failure.retry_after is not None:
                wait = min(failure.retry_after, self.cfg.max_retry_after_s)
            if attempt + 1 < self.cfg.max_attempts:
                await asyncio.sleep(wait)
        raise CallFailed(failure.reason, f"{failure.detail}; gave up after {self.cfg.max_attempts} attempts",
                         self.cfg.max_attempts)

    async def routes(self) -> set[str]:
        """The paths the server lists in its OpenAPI document (FastAPI's `/openapi.json`, which vLLM and
        `transformers serve` both publish); empty where it has none."""
        root = self.base_url.removesuffix("/v1")
        try:
            response = await self.http.get(f"{root}/openapi.json", headers=self.headers)
            return set(response.json().get("paths", {})) if response.status_code == 200 else set()
        except (httpx.HTTPError, ValueError, AttributeError):
            return set()

    # --- Batch API ---------------------------------------------------------------------------------------

    async def _batch_call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {k: v for k, v in self.headers.items() if not (k == "Content-Type" and "files" in kwargs)}
        failure: Exception | None = None
        for attempt in range(self.cfg.max_attempts):
            try:
                response = await self.http.request(method, f"{self.base_url}{path}", headers=headers, **kwargs)
            except httpx.HTTPError as err:
                failure = CallFailed("connection_error", f"{type(err).__name__}: {err}")
            else:
                if response.status_code == 404 and path.startswith(("/files", "/batches")):
                    raise ServerConfigError(
                        f"{self.name} ({self.base_url}) has no Batch API ({method} {path} -> 404: "
                        f"{server_message(response.text)}); use teacher_labeling.backend=openai instead")
                if response.status_code < 300:
                    return response
                failure = self._status_error(response.status_code, response.text, response.headers)
                if isinstance(failure, ServerConfigError) or (isinstance(failure, CallFailed)
                                                               and failure.reason not in TRANSIENT):
                    raise failure
            await asyncio.sleep(self._backoff(attempt))
        raise failure or CallFailed("server_error", "no attempt made")

    async def run_batch(self, requests: dict[str, Body], window: str, poll_s: float,
                        deadline_s: float) -> tuple[dict[str, Reply | CallFailed], str]:
        """Submit chat-completion bodies as one batch, wait (at most `deadline_s`), and read every result."""
        lines = "".join(json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body})
                        + "\n" for cid, body in requests.items())
        upload = (await self._batch_call("POST", "/files", files={"file": ("batch.jsonl", lines.encode())},
                                         data={"purpose": "batch"})).json()
        batch = (await self._batch_call("POST", "/batches", json={
            "input_file_id": upload["id"], "endpoint": "/v1/chat/completions", "completion_window": window})).json()
        log.info("Submitted batch %s with %d requests", batch["id"], len(requests))
        started = time.monotonic()
        while batch.get("status") not in ("completed", "failed", "expired", "cancelled"):
            if time.monotonic() - started > deadline_s:
                raise CallFailed("timeout", f"batch {batch['id']} still {batch.get('status')} after {deadline_s} s "
                                            "(teacher_labeling.openai.batch_deadline_s); it keeps running on the server")
            await asyncio.sleep(poll_s)
            batch = (await self._batch_call("GET", f"/batches/{batch['id']}")).json()
        results: dict[str, Reply | CallFailed] = {}
        for file_id in (batch.get("output_file_id"), batch.get("error_file_id")):
            if not file_id:
                continue
            for line in (await self._batch_call("GET", f"/files/{file_id}/content")).text.splitlines():
                try:
                    row = json.loads(line)
                    response = row.get("response") or {}
                    if response.get("status_code") != 200:
                        results[row["custom_id"]] = CallFailed(
                            "api_error", server_message(json.dumps(row.get("error") or response.get("body"))))
                    else:
                        results[row["custom_id"]] = reply_from(response.get("body"))
                except CallFailed as err:
                    results[row["custom_id"]] = err
                except (ValueError, KeyError, AttributeError):
                    log.warning("Unreadable batch result line: %s", line[:120])
        for cid in requests.keys() - results.keys():
            results[cid] = CallFailed("api_error", f"batch {batch['id']} ended {batch.get('status')} without it")
        return results, batch["id"]
