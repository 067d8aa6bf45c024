"""A real HTTP server on 127.0.0.1 speaking the chat-completions and batch protocols, with faults.

Each request is matched to a `MARK-<n>` marker found in its user message; `script[marker]` is the list of
behaviours its successive calls get (then `ok`). Behaviours: ok, placeholder, invalid_json, truncated,
refusal, 429, 500, 503, timeout, drop, garbage, and the ordinary replies that real servers and proxies send:
429_date (Retry-After as an HTTP date), 429_huge (Retry-After of a day), null_body, list_body, choices_str,
usage_strings, redirect (to another origin), huge (1 MB of content), control_chars, stream_garbage.
A streamed request (`"stream": true`) gets server-sent chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from thinking_summarizer.schemas import Summary
from thinking_summarizer.text.summary_format import render

MARK = re.compile(r"MARK-\d+")
# a client killed mid-answer is part of the tests; its broken pipes are no news
logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)


def summary_for(marker: str, placeholder: bool = False) -> dict[str, Any]:
    colour = "[color]" if placeholder else "red"
    return {
        "key_points": [f"Point one about {marker}.", "The woman smiles.", "She is happy."],
        "objects": [
            {"category": "woman", "description": f"a woman in a {colour} coat on the left", "priority": "primary"},
            {"category": "desk", "description": "a brown wooden desk in the middle", "priority": "secondary"},
            {"category": "mug", "description": "a white mug on the desk", "priority": "secondary"},
        ],
        "emotion_indicators": ["smiling face"],
        "sam3_prompts": ["woman in red coat", "brown desk", "white mug"],
    }


class StubOpenAI:
    """Start with `start()` (returns the base URL), stop with `stop()`; counts calls per marker."""

    def __init__(self, latency: float = 0.0, script: dict[str, list[str]] | None = None,
                 reject_response_format: bool = False, reply: str = "summary"):
        """`reply`: "summary" (a teacher's answer) or "thinking" (a HumanOmniV2-style chain)."""
        self.latency, self.reject_response_format, self.reply = latency, reject_response_format, reply
        self.media_types: Counter[str] = Counter()
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.calls: Counter[str] = Counter()
        self.auth_headers: set[str] = set()
        self.redirects = 0
        self.batches_never_finish = False
        self.files: dict[str, str] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    # --- behaviour -------------------------------------------------------------------------
    def _next(self, marker: str) -> str:
        with self.lock:
            self.calls[marker] += 1
            queue = self.script.get(marker) or []
            return queue.pop(0) if queue else "ok"

    def _completion(self, body: dict[str, Any], behaviour: str, marker: str) -> dict[str, Any]:
        structured = "response_format" in body
        content, finish, refusal = "", "stop", None
        if behaviour == "ok" and self.reply == "thinking":
            content = (f"<context>A person in a room, {marker}.</context><think>"
                       f"{'Let me look at the face and the voice again. ' * 8}{marker}</think><answer>A</answer>")
        elif behaviour in ("ok", "placeholder", "usage_strings", "stream_garbage"):
            data = summary_for(marker, placeholder=behaviour == "placeholder")
            content = json.dumps(data) if structured else render(Summary(**data), {})  # a teacher names every category
        elif behaviour == "invalid_json":
            content = '{"key_points": ["unterminated'
        elif behaviour == "truncated":
            content, finish = json.dumps(summary_for(marker))[:80], "length"
        elif behaviour == "refusal":
            refusal = "I can't help with that."
        elif behaviour == "huge":
            data = summary_for(marker)
            data["objects"][0]["description"] = "a woman " + "very " * 200_000
            content = json.dumps(data)
        elif behaviour == "control_chars":
            data = summary_for(marker)
            data["objects"][0]["description"] = "a woman\u202e in a red coat\x00 on the left"
            content = json.dumps(data) if structured else render(Summary(**data), {})  # a teacher names every category
        prompt_tokens = sum(len(m.get("content") or "") for m in body["messages"]) // 4
        return {
            "id": f"chatcmpl-{marker}", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": content, "refusal": refusal}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content) // 4,
                      "total_tokens": prompt_tokens + len(content) // 4},
        }

    def _marker(self, body: dict[str, Any]) -> str:
        user = next((m["content"] for m in body["messages"] if m["role"] == "user"), "")
        if isinstance(user, list):  # multimodal content parts
            self.media_types.update(p["type"] for p in user)
            user = " ".join(p.get("text", "") for p in user)
        found = MARK.search(user)
        return found.group(0) if found else "default"

    # --- handlers ----------------------------------------------------------------------------
    async def _stream(self, request: web.Request, completion: dict[str, Any], garbage: bool) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        choice = completion["choices"][0]
        content = choice["message"]["content"] or ""
        pieces = [content[i:i + 40] for i in range(0, len(content), 40)] or [""]
        for piece in pieces:
            chunk = {"id": completion["id"], "object": "chat.completion.chunk", "model": completion["model"],
                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        if garbage:
            await response.write(b"data: {not json\n\n")
        last = {"id": completion["id"], "object": "chat.completion.chunk", "model": completion["model"],
                "choices": [{"index": 0, "delta": {"refusal": choice["message"]["refusal"]} if choice["message"]["refusal"]
                             else {}, "finish_reason": choice["finish_reason"]}], "usage": completion["usage"]}
        await response.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
        await response.write_eof()
        return response

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.auth_headers.add(request.headers.get("Authorization", ""))
        body = await request.json()
        if self.reject_response_format and "response_format" in body:
            return web.json_response({"error": {"message": "response_format is not supported",
                                                 "type": "invalid_request_error"}}, status=400)
        marker = self._marker(body)
        behaviour = self._next(marker)
        await asyncio.sleep(self.latency)
        if behaviour == "429":
            return web.json_response({"error": {"message": "slow down", "type": "rate_limit"}}, status=429,
                                     headers={"Retry-After": "0.2"})
        if behaviour == "429_date":
            when = email.utils.formatdate(time.time() + 2, usegmt=True)
            return web.json_response({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": when})
        if behaviour == "429_huge":
            return web.json_response({"error": {"message": "come back tomorrow"}}, status=429,
                                     headers={"Retry-After": "86400"})
        if behaviour == "null_body":
            return web.Response(text="null", content_type="application/json")
        if behaviour == "list_body":
            return web.Response(text="[]", content_type="application/json")
        if behaviour == "choices_str":
            return web.json_response({"choices": "x"})
        if behaviour == "redirect":
            self.redirects += 1
            raise web.HTTPTemporaryRedirect(location="http://127.0.0.2:9/v1/chat/completions")
        if behaviour in ("500", "503"):
            return web.json_response({"error": {"message": "server trouble"}}, status=int(behaviour))
        if behaviour == "timeout":
            await asyncio.sleep(5)  # longer than the tests' client timeout
        if behaviour == "drop":
            request.transport.close()
            return web.Response()
        if behaviour == "garbage":
            return web.Response(text="<html>proxy error</html>", content_type="application/json")
        completion = self._completion(body, behaviour, marker)
        if behaviour == "usage_strings":
            completion["usage"] = {"prompt_tokens": "many", "completion_tokens": None}
        if body.get("stream"):
            return await self._stream(request, completion, behaviour == "stream_garbage")
        return web.json_response(completion)

    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        content = form["file"].file.read().decode()
        file_id = f"file-{len(self.files)}"
        self.files[file_id] = content
        return web.json_response({"id": file_id, "object": "file", "bytes": len(content), "created_at": 0,
                                  "filename": "batch.jsonl", "purpose": "batch", "status": "processed"})

    async def create_batch(self, request: web.Request) -> web.Response:
        body = await request.json()
        out, errors = [], []
        for line in self.files[body["input_file_id"]].splitlines():
            row = json.loads(line)
            marker = self._marker(row["body"])
            behaviour = self._next(marker)
            if behaviour in ("429", "500", "503", "timeout", "drop", "garbage"):
                errors.append({"id": f"r-{row['custom_id']}", "custom_id": row["custom_id"],
                               "response": {"status_code": 500, "body": {"error": {"message": behaviour}}}, "error": None})
            else:
                out.append({"id": f"r-{row['custom_id']}", "custom_id": row["custom_id"], "error": None,
                            "response": {"status_code": 200, "body": self._completion(row["body"], behaviour, marker)}})
        batch_id = f"batch-{len(self.batches)}"
        self.files[f"{batch_id}-out"] = "".join(json.dumps(r) + "\n" for r in out)
        self.files[f"{batch_id}-err"] = "".join(json.dumps(r) + "\n" for r in errors)
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "input_file_id": body["input_file_id"],
            "completion_window": body["completion_window"], "status": "in_progress", "created_at": 0,
            "output_file_id": f"{batch_id}-out", "error_file_id": f"{batch_id}-err" if errors else None,
        }
        return web.json_response(self.batches[batch_id])

    async def get_batch(self, request: web.Request) -> web.Response:
        batch = self.batches[request.match_info["batch_id"]]
        if not self.batches_never_finish:
            batch["status"] = "completed"  # completes on the first poll
        return web.json_response(batch)

    async def file_content(self, request: web.Request) -> web.Response:
        return web.Response(text=self.files[request.match_info["file_id"]])

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes([
            web.post("/v1/chat/completions", self.chat), web.post("/v1/files", self.upload),
            web.post("/v1/batches", self.create_batch), web.get("/v1/batches/{batch_id}", self.get_batch),
            web.get("/v1/files/{file_id}/content", self.file_content),
        ])
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(target=lambda: (self.loop.run_until_complete(serve()), self.loop.run_forever()),
                                       daemon=True)
        self.thread.start()
        ready.wait(10)
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)



@contextlib.contextmanager
def serve_app(routes: list) -> Iterator[str]:
    """Any aiohttp routes served on 127.0.0.1 for the duration; yields the base URL (with /v1)."""
    app = web.Application()
    app.add_routes(routes)
    loop = asyncio.new_event_loop()
    ready, holder = threading.Event(), {}

    async def serve() -> None:
        holder["runner"] = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await holder["runner"].setup()
        site = web.TCPSite(holder["runner"], "127.0.0.1", 0)
        await site.start()
        holder["port"] = site._server.sockets[0].getsockname()[1]
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{holder['port']}/v1"
    finally:
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
