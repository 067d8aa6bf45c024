"""Against a real OpenAI-compatible server nobody here wrote: `transformers serve`, started on 127.0.0.1 for the
tiny student (teacher path) and the tiny thinker (thinking path).

Skipped, with the reason, only when the server cannot start (FastAPI/uvicorn missing, or it never answers).
"""

from __future__ import annotations

import contextlib
import ctypes.util
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from thinking_summarizer.io.openai_client import ServerConfigError, client_settings
from thinking_summarizer.pipelines.thinking_generation.nodes import gate_thinking
from thinking_summarizer.schemas.params.shared import ClientSettings, Endpoint
from thinking_summarizer.schemas.params.teacher import TeacherLabeling
from thinking_summarizer.tiny_models.student import build_tiny_student

from .conftest import build_tiny, label, small_student, think, tiny_model_dir, typed

VOCABULARY, QC, CLIENT = typed("vocabulary"), typed("summary_qc"), typed("openai_client")
TEACHER, THINKING = typed("teacher_labeling"), typed("thinking_generation")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the server's own check: one such server once held 15 GB)."""
    out = subprocess.run(["ps", "-o", "rss=", "--ppid", str(pid), "-p", str(pid)], capture_output=True, text=True)
    return sum(int(v) for v in out.stdout.split()) / 1024


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    """Start `transformers serve <model folder>` (one server at a time) and return its base URL."""
    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        pytest.skip("transformers serve needs fastapi and uvicorn (`pip install -e .[dev]` installs them)")
    started: list[subprocess.Popen] = []

    def stop_all() -> None:
        while started:
            proc = started.pop()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def start(model: Path, *extra: str) -> tuple[str, subprocess.Popen]:
        stop_all()  # one server at a time on this machine
        port = free_port()
        log = open(tmp_path_factory.mktemp("serve") / "server.log", "w+")
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("transformers")), "serve", str(model), "--host", "127.0.0.1",
             "--port", str(port), "--device", "cpu", *extra],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "true"})
        started.append(proc)
        proc.log_path = Path(log.name)  # the server's own log: its access lines count what it answered
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    return f"{url}/v1", proc
            except httpx.HTTPError:
                time.sleep(1)
        log.seek(0)
        pytest.skip(f"transformers serve did not start for {model}: {log.read()[-1500:]}")

    yield start
    stop_all()


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory) -> Path:
    recipe = small_student(max_positions=4096)
    texts = ["The woman in a red coat smiles at the man on the left.", "## Key points", "- person: a woman"] * 20
    path = tiny_model_dir(tmp_path_factory, "student")
    path.mkdir(parents=True)
    build_tiny_student(path, recipe, texts, texts)
    return path


def records(n: int) -> list[dict]:
    return [{"sample_id": f"s{i}", "thinking": f"Sample {i}: the woman in a red coat smiles at the man."}
            for i in range(n)]


def teacher_cfg(url: str, model: str, tmp_path: Path) -> TeacherLabeling:
    openai = {"base_url": url, "model": model, "cache_path": str(tmp_path / "cache.sqlite"), "max_tokens": 48,
              "timeout_s": 60, "concurrency": 4}
    return TEACHER.model_copy(update={"backend": "openai", "openai": TEACHER.openai.model_copy(update=openai)})


CLIENT = CLIENT.model_copy(update={"backoff_base_s": 0.1})


def test_teacher_through_transformers_serve(serve, tiny_student, tmp_path, caplog):
    url, proc = serve(tiny_student)
    cfg = teacher_cfg(url, str(tiny_student), tmp_path)
    labels, rejects, usage = label(records(3), cfg, CLIENT, VOCABULARY, QC)
    # every request was answered (a random tiny model writes no valid summary): the answers reached QC (in the
    # markdown form if the server was seen to answer free text in JSON mode; an empty or cut answer says nothing
    # about that), and nothing was lost to a transport error
    assert labels == [] and len(rejects) == 3
    assert {r["reason"] for r in rejects} <= {"malformed", "invalid_json", "truncated", "placeholder", "schema"}
    assert usage["api_calls"] >= 4 and usage["completion_tokens"] > 0 and usage["estimated_cost"] == 0
    # a rerun asks nothing: it starts in the remembered mode, and every outcome is in the cache
    _, _, again = label(records(3), cfg, CLIENT, VOCABULARY, QC)
    assert (again["api_calls"], again["cached"]) == (0, 3)
    assert rss_mb(proc.pid) < 8000


def test_pinned_model_400_fails_the_run_with_the_servers_message(serve, tiny_student, tmp_path):
    url, _ = serve(tiny_student)
    cfg = teacher_cfg(url, "qwen-max", tmp_path)
    with pytest.raises(ServerConfigError, match=r"HTTP 400: Server is pinned to .*student.*requested 'qwen-max'"):
        label(records(2), cfg, CLIENT, VOCABULARY, QC)


@pytest.fixture(scope="module")
def tiny_thinker(tmp_path_factory) -> Path:
    return build_tiny(tmp_path_factory, "thinker")


def chat_requests(log_path: Path, status: str = "") -> int:
    """Chat requests in a server's own access log (uvicorn's, for vLLM and transformers serve); with `status`,
    those it answered so."""
    return sum('"POST /v1/chat/completions HTTP/1.1"' in line and status in line
               for line in log_path.read_text().splitlines())


def test_thinking_through_transformers_serve_with_default_settings(serve, tiny_thinker, tmp_path):
    """Only the server's URL and model set: the client sees it is a transformers serve (its routes), sends the
    video by path, no vLLM fields, and a frame count the clip has (the server's own default, 32 frames, fails on
    these 24-frame clips). A data_url, which it cannot load, is refused before any request reaches it."""
    if importlib.util.find_spec("torchcodec") is None or ctypes.util.find_library("avcodec") is None:
        pytest.skip("transformers serve decodes video with torchcodec and FFmpeg's libraries (`make test` "
                    "installs both); one is missing")
    from thinking_summarizer.demo.corpus import write_corpus
    from thinking_summarizer.pipelines.data_sampling.nodes import load_sources

    url, proc = serve(tiny_thinker)
    demo = typed("demo_data")
    write_corpus(demo.model_copy(update={"root": str(tmp_path / "demo"), "n_scenes": 4}))
    samples, _ = load_sources({"b": {"path": str(tmp_path / "demo/intentbench.json"),
                                     "video_root": str(tmp_path / "demo/videos")}}, typed("data_sampling"))
    openai = THINKING.openai.model_copy(update={"base_urls": [url], "model": str(tiny_thinker), "concurrency": 2,
                                                "timeout_s": 120})
    cfg = THINKING.model_copy(update={"backend": "openai", "checkpoint_every": 1, "openai": openai,
                                      "generation": THINKING.generation.model_copy(update={"max_new_tokens": 16})})
    inline = cfg.model_copy(update={"openai": openai.model_copy(update={"video_transport": "data_url"})})
    with pytest.raises(ServerConfigError, match="data_url cannot reach .* transformers serve"):
        think(samples, inline, CLIENT, tmp_path)
    assert chat_requests(proc.log_path) == 0
    records_ = think(samples, cfg, CLIENT, tmp_path)["shard-000-of-001"]
    errors = [r["error"] for r in records_ if r["error"]]
    assert not errors, errors[:2]
    assert all(r["tokens"] > 0 for r in records_)
    assert chat_requests(proc.log_path) == chat_requests(proc.log_path, '" 200') == len(samples)
    # asked which server it is once per generator, not once per checkpoint chunk (one per sample here) ...
    asked = [line for line in proc.log_path.read_text().splitlines() if '"GET /openapi.json' in line]
    assert len(asked) == 2  # ... and once for the refused data_url run
    _, rejects, _ = gate_thinking(records_, samples, THINKING)
    assert {r["reason"] for r in rejects} <= {"no_tags", "too_short"}  # random weights write no tagged chain


def test_served_student_summarises_as_the_local_one(serve, tiny_student, tmp_path):
    """student_inference.backend=openai through a real server: the same greedy summaries as in-process."""
    from thinking_summarizer.student import untrained
    from thinking_summarizer.student.backends import ServedStudent

    url, _ = serve(tiny_student)
    instruction = "Summarise the reasoning."
    thinkings = [t["thinking"] for t in records(3)]
    local = untrained(str(tiny_student), instruction, device="cpu").summarize(thinkings, 3, 12)
    endpoint = Endpoint(base_url=url, model=str(tiny_student), concurrency=3, timeout_s=60)
    served = ServedStudent({"instruction": instruction, "base_model": str(tiny_student)},
                           client_settings(CLIENT, endpoint, ClientSettings)).summarize(thinkings, 3, 12)
    assert served.texts == local.texts
    assert all(n > 0 for n in served.new_tokens)
