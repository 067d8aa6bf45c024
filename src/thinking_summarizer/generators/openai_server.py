"""HumanOmniV2 served behind an OpenAI-compatible API (e.g. `vllm serve PhilipC/HumanOmniV2`)."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import openai
from tqdm.auto import tqdm

from thinking_summarizer.generators import Generation, user_text
from thinking_summarizer.media import probe


class OpenAIServerGenerator:
    """Sends the video (as a data URL) and the question; spreads requests over `base_urls`."""

    def __init__(self, cfg: dict[str, Any], prompt: dict[str, Any], generation: dict[str, Any]):
        self.cfg, self.prompt, self.generation = cfg, prompt, generation
        self.model_id = cfg["model"]

    def _request(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Messages (the video as a data URL) and, for a video with sound, vLLM's audio-in-video switch."""
        with_audio = self.cfg["use_audio_in_video"] and probe(sample["video_path"]).has_audio
        video = base64.b64encode(Path(sample["video_path"]).read_bytes()).decode()
        messages = [
            {"role": "system", "content": self.prompt["system"]},
            {"role": "user", "content": [
                {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{video}"}},
                {"type": "text", "text": user_text(sample, self.prompt, with_audio)},
            ]},
        ]
        extra = {"mm_processor_kwargs": {"use_audio_in_video": True}} if with_audio else None
        return {"messages": messages, "extra_body": extra}

    async def _one(self, client: openai.AsyncOpenAI, sample: dict[str, Any]) -> Generation:
        sid = sample["sample_id"]
        try:
            request = self._request(sample)
        except OSError as err:
            return Generation(sid, error=f"unreadable_video: {err}")
        try:
            response = await client.chat.completions.create(
                model=self.model_id, **request, max_tokens=self.generation["max_new_tokens"],
                temperature=self.generation["temperature"], top_p=self.generation["top_p"])
            choice = response.choices[0]
            tokens = response.usage.completion_tokens if response.usage else 0
            return Generation(sid, choice.message.content or "", tokens)
        except (openai.APIError, IndexError, AttributeError) as err:
            return Generation(sid, error=f"generation_error: {type(err).__name__}: {str(err)[:200]}")

    async def _all(self, samples: list[dict[str, Any]]) -> list[Generation]:
        key = os.environ.get(self.cfg["api_key_env"]) or "EMPTY"
        clients = [openai.AsyncOpenAI(api_key=key, base_url=url, timeout=self.cfg["timeout_s"],
                                      max_retries=self.cfg["max_retries"]) for url in self.cfg["base_urls"]]
        gate = asyncio.Semaphore(self.cfg["concurrency"] * len(clients))
        bar = tqdm(total=len(samples), desc=f"thinking {self.model_id}", unit="sample")

        async def run(index: int, sample: dict[str, Any]) -> Generation:
            async with gate:
                result = await self._one(clients[index % len(clients)], sample)
            bar.update()
            return result

        try:
            return await asyncio.gather(*(run(i, s) for i, s in enumerate(samples)))
        finally:
            bar.close()
            for client in clients:
                await client.close()

    def generate(self, samples: list[dict[str, Any]]) -> list[Generation]:
        return asyncio.run(self._all(samples))
