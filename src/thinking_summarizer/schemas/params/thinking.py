"""`thinking_generation`: how HumanOmniV2 is asked, in-process or through a server, and which answers are kept."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from thinking_summarizer.schemas.params.base import Section, registered
from thinking_summarizer.schemas.params.shared import ClientSettings, Endpoint


class ThinkingPrompt(Section):
    system: str
    audio_preamble: str
    type_instructions: dict[str, str]


class GenerationSettings(Section):
    max_new_tokens: int = Field(ge=1)
    temperature: float = Field(ge=0)
    top_p: float = Field(gt=0, le=1)


class VideoSampling(Section):
    fps: float = Field(gt=0)
    max_frames: int = Field(ge=1)
    min_pixels: int = Field(ge=1)
    max_pixels: int = Field(ge=1)


class AudioUse(Section):
    use: bool
    max_seconds: float = Field(gt=0)


class InProcessThinker(Section):
    model: str
    device: str
    dtype: str
    attn_implementation: str
    batch_size: int = Field(ge=1)
    video: VideoSampling
    audio: AudioUse


class ThinkingServers(Endpoint):
    """Servers of HumanOmniV2; `server` and `video_transport` are found out from the server when `auto`."""

    base_url: str | None = None
    base_urls: list[str] = Field(min_length=1)
    server: Literal["auto", "vllm", "transformers", "other"]
    video_transport: Literal["auto", "data_url", "path", "http"]
    video_base_url: str | None = None
    audio_fields: dict[str, Any] | None = None  # free-form request fields, sent as written; null: none
    extra_fields: dict[str, Any] | None = None
    num_frames: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _http_needs_a_base(self) -> ThinkingServers:
        if self.video_transport == "http" and not self.video_base_url:
            raise ValueError("video_base_url is required with video_transport: http")
        return self


class ThinkingClient(ThinkingServers, ClientSettings):
    """The thinking servers' settings over the shared client policy (`io.openai_client.client_settings`)."""


class Gates(Section):
    min_chars: int = Field(ge=0)
    max_chars: int = Field(ge=1)


class ThinkingGeneration(Section):
    """`thinking_generation`: the backend, its sharding and checkpoints, prompt, generation and gates."""

    backend: registered("thinking_generation.backend")
    shard_id: int = Field(ge=0)
    num_shards: int = Field(ge=1)
    checkpoint_every: int = Field(ge=1)
    prompt: ThinkingPrompt
    generation: GenerationSettings
    transformers: InProcessThinker
    openai: ThinkingServers
    gates: Gates

    @property
    def model_id(self) -> str:
        """The thinker as records and cache keys name it: the model its backend loads or asks a server for."""
        return {"transformers": self.transformers.model, "openai": self.openai.model}.get(self.backend, self.backend)
