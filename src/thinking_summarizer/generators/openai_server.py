"""HumanOmniV2 served behind an OpenAI-compatible API (`vllm serve PhilipC/HumanOmniV2`, or `transformers serve`),
reached through the project's one client (`openai_client`)."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from thinking_summarizer.generators import Generation, user_text
from thinking_summarizer.io.media import probe
from thinking_summarizer.io.openai_client import (
    CallFailed, OpenAICompatibleClient, ServerConfigError, client_settings,
)

CONF_KEY = "thinking_generation.openai"


class OpenAIServerGenerator:
    """Sends the video (as `video_transport` says) and the question; spreads requests over `base_urls`."""

    @classmethod
    def from_config(cls, cfg: dict[str, Any], client: dict[str, Any] | None) -> OpenAIServerGenerator:
        return cls(client_settings(client, cfg["openai"]), cfg["prompt"], cfg["generation"])

    def __init__(self, cfg: dict[str, Any], prompt: dict[str, Any], generation: dict[str, Any]):
        self.cfg, self.prompt, self.generation = cfg, prompt, generation
        self.model_id = cfg["model"]
        if cfg["video_transport"] not in ("data_url", "path", "http"):
            raise ValueError(f"{CONF_KEY}.video_transport: {cfg['video_transport']!r} is not data_url, path or http")
        if cfg["video_transport"] == "http" and not cfg.get("video_base_url"):
            raise ValueError(f"{CONF_KEY}.video_base_url is required with video_transport: http")

    def _video_url(self, path: Path) -> str:
        """data_url: the bytes inline (vLLM); path: the file's path, for a server on this machine; http: the
        file under `video_base_url`, which the user serves."""
        transport = self.cfg["video_transport"]
        if transport == "data_url":
            return f"data:video/mp4;base64,{base64.b64encode(path.read_bytes()).decode()}"
        if transport == "path":
            return str(path.resolve())
        return f"{self.cfg['video_base_url'].rstrip('/')}/{path.name}"

    def request(self, sample: dict[str, Any]) -> dict[str, Any]:
        """The chat-completions body for one sample; the audio fields (vLLM's) only where conf names them, and the
        frame count (`num_frames`, at most the video's) where conf asks for one."""
        path = Path(sample["video_path"])
        info = sample.get("video_info") or asdict(probe(path))
        with_audio = bool(self.cfg.get("audio_fields")) and info["has_audio"]
        body = {
            "model": self.model_id,
            "messages": [
                {"role": "system", "content": self.prompt["system"]},
                {"role": "user", "content": [
                    {"type": "video_url", "video_url": {"url": self._video_url(path)}},
                    {"type": "text", "text": user_text(sample, self.prompt, with_audio)},
                ]},
            ],
            "max_tokens": self.generation["max_new_tokens"], "temperature": self.generation["temperature"],
            "top_p": self.generation["top_p"],
        }
        body |= (self.cfg["audio_fields"] if with_audio else {}) | (self.cfg.get("extra_fields") or {})
        if self.cfg.get("num_frames"):
            frames = min(self.cfg["num_frames"], info["num_frames"] or self.cfg["num_frames"])
            body["chat_template_kwargs"] = (body.get("chat_template_kwargs") or {}) | {"num_frames": frames}
        return body

    async def _one(self, client: OpenAICompatibleClient, sample: dict[str, Any]) -> Generation:
        sid = sample["sample_id"]
        try:
            body = self.request(sample)
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

    async def _all(self, samples: list[dict[str, Any]]) -> list[Generation]:
        clients = [OpenAICompatibleClient(self.cfg | {"base_url": url}, CONF_KEY) for url in self.cfg["base_urls"]]
        bar = tqdm(total=len(samples), desc=f"thinking {self.model_id}", unit="sample")

        async def run(index: int, sample: dict[str, Any]) -> Generation:
            result = await self._one(clients[index % len(clients)], sample)
            bar.update()
            return result

        try:
            return list(await asyncio.gather(*(run(i, s) for i, s in enumerate(samples))))
        finally:
            bar.close()
            for client in clients:
                await client.http.aclose()

    def generate(self, samples: list[dict[str, Any]]) -> list[Generation]:
        return asyncio.run(self._all(samples))
