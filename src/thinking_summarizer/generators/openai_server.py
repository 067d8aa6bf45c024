"""HumanOmniV2 served behind an OpenAI-compatible API (`vllm serve PhilipC/HumanOmniV2`, or `transformers serve`),
reached through the project's one client (`openai_client`)."""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from thinking_summarizer.generators import Generation, user_text
from thinking_summarizer.io.media import probe
from thinking_summarizer.io.openai_client import (
    Body, CallFailed, OpenAICompatibleClient, ServerConfigError, client_settings, is_local,
)
from thinking_summarizer.schemas import Row
from thinking_summarizer.schemas.params.shared import ClientPolicy
from thinking_summarizer.schemas.params.thinking import GenerationSettings, ThinkingClient, ThinkingGeneration, ThinkingPrompt

CONF_KEY = "thinking_generation.openai"
log = logging.getLogger(__name__)
# a route only that server publishes in its OpenAPI document
SIGNATURE_ROUTES = {"transformers": "/load_model", "vllm": "/version"}


@dataclass(frozen=True)
class ServerPlan:
    """What requests to one server carry: how the video travels, whether the audio fields (vLLM's) and a frame
    count (`transformers serve` reads `chat_template_kwargs.num_frames`) go with it."""

    url: str
    kind: str
    transport: str
    audio: bool
    frames: bool


def identify(routes: set[str]) -> str:
    """vllm, transformers (serve) or other, from the routes the server publishes."""
    return next((kind for kind, route in SIGNATURE_ROUTES.items() if route in routes), "other")


class OpenAIServerGenerator:
    """Sends the video (as `video_transport` says) and the question; spreads requests over `base_urls`."""

    @classmethod
    def from_config(cls, cfg: ThinkingGeneration, client: ClientPolicy) -> OpenAIServerGenerator:
        return cls(client_settings(client, cfg.openai, ThinkingClient), cfg.prompt, cfg.generation)

    def __init__(self, cfg: ThinkingClient, prompt: ThinkingPrompt, generation: GenerationSettings):
        self.cfg, self.prompt, self.generation = cfg, prompt, generation
        self.model_id = cfg.model
        self._plans: dict[str, ServerPlan] = {}  # per server, asked once: generate() runs once per checkpoint chunk

    def plan(self, url: str, kind: str) -> ServerPlan:
        """The requests one server can take, or a ServerConfigError saying why the configured ones cannot be."""
        transport = self.cfg.video_transport
        if transport == "auto":
            transport = "data_url" if kind != "transformers" else "path" if is_local(url) else "http"
        if kind == "transformers" and transport == "data_url":
            raise ServerConfigError(
                f"{CONF_KEY}.video_transport: data_url cannot reach {url}: transformers serve loads a video only "
                "from an http(s) URL or a path on its own machine (its load_video answers 'Incorrect format used "
                "for video'); use path (a server on this machine), http (with video_base_url) or auto")
        if transport == "path" and not is_local(url):
            raise ServerConfigError(f"{CONF_KEY}.video_transport: path sends this machine's file paths, and {url} "
                                    "is another machine; use data_url or http")
        if transport == "http" and not self.cfg.video_base_url:
            raise ServerConfigError(f"{CONF_KEY}.video_base_url is required to send videos by http to {url}"
                                    + (" (a transformers serve on another machine)" if kind == "transformers" else ""))
        return ServerPlan(url, kind, transport, audio=bool(self.cfg.audio_fields) and kind != "transformers",
                          frames=bool(self.cfg.num_frames) and kind == "transformers")

    async def _plan(self, client: OpenAICompatibleClient) -> ServerPlan:
        if client.base_url in self._plans:
            return self._plans[client.base_url]
        kind = self.cfg.server if self.cfg.server != "auto" else identify(await client.routes())
        plan = self._plans[client.base_url] = self.plan(client.base_url, kind)
        log.info("Thinking server %s (%s): video by %s%s%s", plan.url, kind, plan.transport,
                 ", audio fields" if plan.audio else "", f", {self.cfg.num_frames} frames at most" if plan.frames else "")
        return plan

    def _video_url(self, path: Path, transport: str) -> str:
        """data_url: the bytes inline (vLLM); path: the file's path, for a server on this machine; http: the
        file under `video_base_url`, which the user serves."""
        if transport == "data_url":
            return f"data:video/mp4;base64,{base64.b64encode(path.read_bytes()).decode()}"
        if transport == "path":
            return str(path.resolve())
        return f"{self.cfg.video_base_url.rstrip('/')}/{path.name}"

    def request(self, sample: Row, plan: ServerPlan) -> Body:
        """The chat-completions body for one sample to one server: the audio fields only where conf names them
        and the server takes them, the frame count (`num_frames`, at most the video's) where the server reads
        one."""
        path = Path(sample["video_path"])
        info = sample.get("video_info") or asdict(probe(path))
        with_audio = plan.audio and info["has_audio"]
        body = {
            "model": self.model_id,
            "messages": [
                {"role": "system", "content": self.prompt.system},
                {"role": "user", "content": [
                    {"type": "video_url", "video_url": {"url": self._video_url(path, plan.transport)}},
                    {"type": "text", "text": user_text(sample, self.prompt, with_audio)},
                ]},
            ],
            "max_tokens": self.generation.max_new_tokens, "temperature": self.generation.temperature,
            "top_p": self.generation.top_p,
        }
        body |= ((self.cfg.audio_fields or {}) if with_audio else {}) | (self.cfg.extra_fields or {})
        if plan.frames:
            frames = min(self.cfg.num_frames, info["num_frames"] or self.cfg.num_frames)
            body["chat_template_kwargs"] = (body.get("chat_template_kwargs") or {}) | {"num_frames": frames}
        return body

    async def _one(self, client: OpenAICompatibleClient, plan: ServerPlan, sample: Row) -> Generation:
        sid = sample["sample_id"]
        try:
            body = self.request(sample, plan)
        except OSError as err:
            return Generation(sid, error=f"unreadable_video: {err}")
        try:
            reply, _ = await client.chat(body)
        except CallFailed as err:
            return Generation(sid, error=f"generation_error: {err.reason}: {err.detail}")
        except (ServerConfigError, asyncio.CancelledError):
            raise
        except Exception as err:  # one sample's surprise must not cost the others their answers
            return Generation(sid, error=f"generation_error: internal_error: {type(err).__name__}: {err}")
        return Generation(sid, reply.content, reply.usage["completion_tokens"])

    async def _all(self, samples: list[Row]) -> list[Generation]:
        clients = [OpenAICompatibleClient(self.cfg.model_copy(update={"base_url": url}), CONF_KEY) for url in self.cfg.base_urls]
        bar = None
        try:
            plans = [await self._plan(client) for client in clients]  # refused here, before any sample is sent
            bar = tqdm(total=len(samples), desc=f"thinking {self.model_id}", unit="sample")

            async def run(index: int, sample: Row) -> Generation:
                at = index % len(clients)
                result = await self._one(clients[at], plans[at], sample)
                bar.update()
                return result

            return list(await asyncio.gather(*(run(i, s) for i, s in enumerate(samples))))
        finally:
            if bar is not None:
                bar.close()
            for client in clients:
                await client.http.aclose()

    def generate(self, samples: list[Row]) -> list[Generation]:
        return asyncio.run(self._all(samples))
