import json
import logging
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from thinking_summarizer.demo.scenes import make_scene
from thinking_summarizer.io.openai_client import CallFailed, ServerConfigError
from thinking_summarizer.io.result_cache import ResponseCache
from thinking_summarizer.schemas.params.shared import ClientPolicy
from thinking_summarizer.schemas.params.teacher import TeacherEndpoint, TeacherLabeling
from thinking_summarizer.teachers import build_teacher
from thinking_summarizer.text.summary_format import category_lookup, parse
from thinking_summarizer.text.summary_qc import find_placeholders
from thinking_summarizer.text.tagged_output import extract

from .conftest import REPO, kill_after_calls, label, typed
from .typed_call import to_json
from .openai_stub import StubOpenAI, summary_for

SECRET = "sk-test-" + "S3cr3tK3y" * 3
PARAMS = typed("teacher_labeling")
VOCABULARY, QC, CLIENT = typed("vocabulary"), typed("summary_qc"), typed("openai_client")


@pytest.fixture
def stub():
    servers = []

    def start(**kwargs):
        server = StubOpenAI(**kwargs)
        servers.append(server)
        return server, server.start()

    yield start
    for server in servers:
        server.stop()


def teacher_cfg(base_url: str | None, tmp_path: Path, backend: str = "openai",
                **settings) -> tuple[TeacherLabeling, ClientPolicy]:
    """The teacher's section pointed at a test server, and the client policy, quick to give up; each of
    `settings` goes to the one of the two that has it."""
    settings = {"timeout_s": 1.0, "max_attempts": 3, "backoff_base_s": 0.05, "backoff_max_s": 0.2,
                "batch_poll_s": 0.05} | settings
    openai = {k: v for k, v in settings.items() if k in TeacherEndpoint.model_fields}
    openai |= {"base_url": base_url, "cache_path": str(tmp_path / "cache.sqlite")}
    cfg = PARAMS.model_copy(update={"backend": backend, "openai": PARAMS.openai.model_copy(update=openai)})
    return cfg, CLIENT.model_copy(update={k: v for k, v in settings.items() if k not in openai})


def records(n: int) -> list[dict]:
    return [{"sample_id": f"s{i}", "thinking": f"MARK-{i} The woman in a red coat smiles."} for i in range(n)]


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("TEACHER_API_KEY", SECRET)


SCRIPT = {
    "MARK-1": ["429"], "MARK-2": ["500", "503"], "MARK-3": ["timeout"], "MARK-4": ["drop"],
    "MARK-5": ["invalid_json"], "MARK-6": ["truncated", "truncated"], "MARK-7": ["refusal", "refusal"],
    "MARK-8": ["placeholder", "placeholder"], "MARK-9": ["placeholder"], "MARK-10": ["500"] * 3,
    "MARK-11": ["garbage"],
}
EXPECTED = {  # marker -> (status, reason, calls)
    0: ("labelled", "", 1), 1: ("labelled", "", 2), 2: ("labelled", "", 3), 3: ("labelled", "", 2),
    4: ("labelled", "", 2), 5: ("labelled", "", 2), 6: ("rejected", "truncated", 2), 7: ("rejected", "refusal", 2),
    8: ("rejected", "placeholder", 2), 9: ("labelled", "", 2), 10: ("rejected", "server_error", 3),
    11: ("labelled", "", 2),
}


def test_every_fault_ends_labelled_or_rejected_with_reason(stub, tmp_path, caplog):
    server, url = stub(script=SCRIPT)
    caplog.set_level(logging.DEBUG)
    labels, rejects, usage = label(records(12), *teacher_cfg(url, tmp_path), VOCABULARY, QC)
    outcome = {r["sample_id"]: ("labelled", "") for r in labels} | {r["sample_id"]: ("rejected", r["reason"]) for r in rejects}
    assert outcome == {f"s{i}": EXPECTED[i][:2] for i in EXPECTED}
    assert {m: server.calls[f"MARK-{m}"] for m in EXPECTED} == {m: e[2] for m, e in EXPECTED.items()}
    first = next(r for r in labels if r["sample_id"] == "s0")
    assert [o["category"] for o in first["summary"]["objects"]] == ["person", "table", "cup"]  # synonyms normalised
    assert parse(first["markdown"], category_lookup(VOCABULARY)).model_dump() == first["summary"]
    assert usage["api_calls"] == sum(e[2] for e in EXPECTED.values()) and usage["prompt_tokens"] > 0
    assert usage["estimated_cost"] > 0
    assert server.auth_headers == {f"Bearer {SECRET}"}
    everything = caplog.text + json.dumps([labels, rejects, usage])
    assert SECRET not in everything


def test_rerun_pays_only_for_unfinished_samples(stub, tmp_path):
    server, url = stub(script=SCRIPT)
    cfg, client = teacher_cfg(url, tmp_path)
    label(records(12), cfg, client, VOCABULARY, QC)
    before = dict(server.calls)
    labels, rejects, usage = label(records(12), cfg, client, VOCABULARY, QC)
    new_calls = {m: server.calls[m] - before.get(m, 0) for m in server.calls if server.calls[m] != before.get(m, 0)}
    assert new_calls == {"MARK-10": 1}  # only the transient failure is tried again (and now succeeds)
    assert usage["cached"] == 11 and len(labels) == 9 and len(rejects) == 3


def test_killed_run_resumes_without_repeating_calls(stub, tmp_path):
    server, url = stub(latency=0.1)
    cfg, client = teacher_cfg(url, tmp_path, concurrency=4)
    work = records(80)
    first = kill_after_calls("tests.conftest:label",
                             [work, cfg, client, VOCABULARY, QC], server, 20, tmp_path)
    assert 20 <= sum(first.values()) < 80, "the run must be killed halfway"
    teacher = build_teacher(cfg, VOCABULARY, QC, CLIENT)
    cache = ResponseCache(cfg.openai.cache_path)
    finished = {r["thinking"].split()[0] for r in work if cache.get(teacher._key(r["thinking"]))}
    assert len(finished) >= sum(first.values()) - cfg.openai.concurrency
    labels, _, usage = label(work, cfg, client, VOCABULARY, QC)
    assert len(labels) == 80 and usage["cached"] == len(finished)
    assert {m: server.calls[m] for m in finished} == {m: 1 for m in finished}
    # what was in flight at the kill is asked once more; nothing else is
    assert sum(server.calls.values()) == sum(first.values()) + 80 - len(finished)


def test_server_without_structured_output_falls_back_to_markdown(stub, tmp_path):
    server, url = stub(reject_response_format=True)
    labels, rejects, _ = label(records(5), *teacher_cfg(url, tmp_path), VOCABULARY, QC)
    assert (len(labels), rejects) == (5, [])
    assert labels[0]["summary"]["objects"][0]["description"] == "a woman in a red coat on the left"


def test_batch_api_mode(stub, tmp_path):
    server, url = stub(script={"MARK-1": ["placeholder"], "MARK-2": ["500"], "MARK-3": ["refusal", "refusal"]})
    cfg, client = teacher_cfg(url, tmp_path, backend="openai_batch")
    labels, rejects, usage = label(records(5), cfg, client, VOCABULARY, QC)
    assert sorted(r["sample_id"] for r in labels) == ["s0", "s1", "s4"]
    assert {r["sample_id"]: r["reason"] for r in rejects} == {"s2": "api_error", "s3": "refusal"}
    assert len(server.batches) == 2  # the first batch, then the QC retries
    labels, rejects, usage = label(records(5), cfg, client, VOCABULARY, QC)
    assert usage["cached"] == 4 and len(labels) == 4  # the batch-level error is retried, now fine


def test_missing_key_is_a_clear_error_unless_the_server_is_local(stub, tmp_path, monkeypatch):
    monkeypatch.delenv("TEACHER_API_KEY")
    with pytest.raises(ServerConfigError, match="set the environment variable TEACHER_API_KEY"):
        label(records(1), *teacher_cfg("https://teacher.example.com/v1", tmp_path), VOCABULARY, QC)
    server, url = stub()
    labels, _, _ = label(records(1), *teacher_cfg(url, tmp_path), VOCABULARY, QC)
    assert len(labels) == 1 and server.auth_headers == {""}  # no key, no Authorization header
    with pytest.raises(ServerConfigError, match=r"teacher_labeling.openai.base_url is required"):
        label(records(1), *teacher_cfg(None, tmp_path), VOCABULARY, QC)


def test_extractive_teacher_on_real_chains(shared_sample):
    """Issue 21's bar on the 20 real records: 19 kept, none with a cut, repeated or narrating key point, a denied
    indicator or a person in the chain without a person object, and the answer's emotion (its `clean_list`) among
    the indicators of 18."""
    from thinking_summarizer.text.label_quality import LabelChecker

    teacher = build_teacher(PARAMS, VOCABULARY, QC, CLIENT)
    records = json.loads(shared_sample.read_text())
    chains = [(f"r{i}", extract(r["solution"]).thinking) for i, r in enumerate(records)]
    outcomes = teacher.label_all(chains)
    labelled = [o for o in outcomes if o.status == "labelled"]
    assert len(labelled) >= 19 * len(outcomes) / 20, Counter(o.reason for o in outcomes)
    checker = LabelChecker(PARAMS.extractive, VOCABULARY, QC.empty_description_words)
    thinking = dict(chains)
    found = Counter()
    for outcome in labelled:
        found.update(checker.problems(outcome.summary, thinking[outcome.sample_id]))
    assert {check: n for check, n in found.items() if check != "ungrounded_objects" and n} == {}
    answer_words = {f"r{i}": [w.lower() for w in r["clean_list"]] for i, r in enumerate(records)}
    concluded = [o.sample_id for o in labelled  # "nervousness" carries "nervous"
                 if any(w in i.lower() for w in answer_words[o.sample_id] for i in o.summary["emotion_indicators"])]
    assert len(concluded) >= 18 * len(outcomes) / 20, sorted(set(thinking) - set(concluded))
    narration = {"screen", "subtitle", "subtitles", "video", "frame", "clip", "camera"}
    for outcome in labelled:
        assert find_placeholders(outcome.summary, QC.placeholder_patterns) == []
        assert outcome.summary["objects"][0]["category"] == "person"
        for obj in outcome.summary["objects"]:
            assert not narration & set(re.findall(r"[a-z]+", obj["description"].lower())), obj
        assert outcome.summary["emotion_indicators"], outcome.sample_id



def test_the_emotion_lexicon_covers_the_answer_words_of_real_emer_records(shared_sample):
    """IntentTrain-Emer's `clean_list` is the answer's open emotion vocabulary: every word of it is an emotion the
    teacher can carry from the conclusion into the indicators."""
    lexicon = {word.lower() for word in PARAMS.extractive.emotion_lexicon}
    words = [w.lower() for record in json.loads(shared_sample.read_text()) for w in record["clean_list"]]
    assert words and [w for w in words if w not in lexicon] == []


EXTRACTIVE = build_teacher(PARAMS, VOCABULARY, QC, CLIENT)


def test_extractive_teacher_resolves_plural_and_second_mentions():
    summary = EXTRACTIVE.summarize(
        "I'm watching two women talking at a kitchen table. The woman in a green jacket on the left keeps her arms "
        "crossed. The other woman leans forward, and her eyebrows are raised high. Her mouth is pressed into a thin "
        "line. So the answer is that she is skeptical.")
    people = [o["description"] for o in summary["objects"] if o["category"] == "person"]
    assert people == ["a woman in a green jacket on the left", "a woman"], people
    # "her eyebrows" follow "the other woman": they are hers, not the first woman's
    regions = {o["category"]: o["description"] for o in summary["objects"] if o["category"] not in ("person", "table")}
    assert regions["eyebrows"] == "the eyebrows of the woman, raised high", regions
    assert "skeptical" in summary["emotion_indicators"]
    summary = EXTRACTIVE.summarize("A man in a grey coat sits at a desk. The man opposite, in a blue shirt, is "
                                   "silent. Another man in a red jacket walks in. His face is flushed.")
    people = [o["description"] for o in summary["objects"] if o["category"] == "person"]
    assert people == ["a man in a grey coat", "a man in a blue shirt"]  # max_people: 2


def test_extractive_teacher_carries_clothing_from_anywhere_and_skips_narration():
    summary = EXTRACTIVE.summarize(
        "Okay, I'm watching this video. I see a man on screen. The subtitles on the screen say 'Wait...'. "
        "Judging by his black suit he is at work. His face looks tense and his brow is deeply furrowed. "
        "His hands grip the chair. Overall he seems anxious and irritated.")
    described = [o["description"] for o in summary["objects"]]
    assert described[0] == "a man in a black suit"
    assert not any(o["category"] == "tv" for o in summary["objects"])
    assert "the brow of the man in a black suit, deeply furrowed" in described
    assert {"anxious", "irritated"} <= set(summary["emotion_indicators"])
    # quoted speech is no placeholder, a placeholder outside quotes still is
    assert find_placeholders({"k": ["He says 'Ah? I...' and stops", "Her answer was ['Happy']"]},
                             QC.placeholder_patterns) == []
    assert find_placeholders({"k": "a [color] shirt ..."}, QC.placeholder_patterns) == ["[color]", "..."]


def test_gestures_alone_name_no_hand():
    summary = EXTRACTIVE.summarize("A woman in a red dress on the left is pointing and making a gesture. "
                                   "Her face looks angry and her eyes are narrowed. So the answer is angry.")
    assert "hand" not in {o["category"] for o in summary["objects"]}


def test_extractive_teacher_never_lists_what_the_thinking_rules_out():
    demo = typed("demo_data")
    teacher = build_teacher(PARAMS, VOCABULARY, QC, CLIENT)
    scenes = [make_scene(i, demo) for i in range(60)]
    outcomes = teacher.label_all([(s.scene_id, s.thinking) for s in scenes])
    assert all(o.status == "labelled" for o in outcomes)
    hits = total = 0
    for scene, outcome in zip(scenes, outcomes):
        described = " ".join(o["description"] for o in outcome.summary["objects"])
        for noun in scene.distractors:
            assert noun not in described
        found = {o["category"] for o in outcome.summary["objects"]}
        hits += len({o.category for o in scene.objects} & found)
        total += len({o.category for o in scene.objects})
    assert hits / total > 0.75


ORDINARY_REPLIES = {  # marker -> what real servers and proxies answer first
    "MARK-0": ["429_date"], "MARK-1": ["429_huge"], "MARK-2": ["null_body"], "MARK-3": ["list_body"],
    "MARK-4": ["choices_str"], "MARK-5": ["usage_strings"], "MARK-6": ["stream_garbage"],
    "MARK-7": ["huge", "huge"], "MARK-8": ["control_chars", "control_chars"],
}


def test_ordinary_replies_never_end_the_run(stub, tmp_path):
    server, url = stub(script=ORDINARY_REPLIES)
    cfg, client = teacher_cfg(url, tmp_path, max_retry_after_s=0.5, timeout_s=5.0)
    started = time.monotonic()
    labels, rejects, usage = label(records(9), cfg, client, VOCABULARY, QC)
    assert time.monotonic() - started < 10  # a day's Retry-After is capped
    assert sorted(r["sample_id"] for r in labels) == [f"s{i}" for i in range(7)]
    # 1 MB of content and hidden characters are rejected before they reach the training files
    assert {r["sample_id"]: r["reason"] for r in rejects} == {"s7": "oversized_reply", "s8": "bad_characters"}
    assert {f"MARK-{i}": server.calls[f"MARK-{i}"] for i in range(7)} == {
        "MARK-0": 2, "MARK-1": 2, "MARK-2": 2, "MARK-3": 2, "MARK-4": 2, "MARK-5": 1, "MARK-6": 2}
    assert usage["api_calls"] == sum(server.calls.values())


def test_retry_after_as_http_date_is_waited_for(stub, tmp_path):
    server, url = stub(script={"MARK-0": ["429_date"]})
    started = time.monotonic()
    labels, _, _ = label(records(1), *teacher_cfg(url, tmp_path), VOCABULARY, QC)
    assert len(labels) == 1 and server.calls["MARK-0"] == 2
    assert time.monotonic() - started >= 0.9  # the date is 2 s ahead, in whole seconds


def test_cross_origin_redirect_is_not_followed_and_stops_the_run(stub, tmp_path):
    server, url = stub(script={"MARK-0": ["redirect"]})
    with pytest.raises(ServerConfigError, match=r"redirects to 'http://127.0.0.2:9/v1/chat/completions'"):
        label(records(1), *teacher_cfg(url, tmp_path), VOCABULARY, QC)
    assert server.redirects == 1


def test_a_changed_prompt_asks_again_an_unchanged_one_never(stub, tmp_path):
    server, url = stub()
    cfg, client = teacher_cfg(url, tmp_path)
    label(records(3), cfg, client, VOCABULARY, QC)
    _, _, usage = label(records(3), cfg, client, VOCABULARY, QC)
    assert (sum(server.calls.values()), usage["cached"], usage["prompt_tokens"], usage["estimated_cost"]) == (3, 3, 0, 0)
    for change in ({"prompt": cfg.prompt.model_copy(update={"system": cfg.prompt.system + "\n9. Be brief."})},
                   {"openai": cfg.openai.model_copy(update={"temperature": 0.3})},
                   {"openai": cfg.openai.model_copy(update={"response_format": "json_object"})}):
        before = sum(server.calls.values())
        _, _, usage = label(records(3), cfg.model_copy(update=change), client, VOCABULARY, QC)
        assert sum(server.calls.values()) - before == 3 and usage["cached"] == 0, change
    # a new vocabulary is a new prompt too
    before = sum(server.calls.values())
    label(records(3), cfg, client, VOCABULARY.model_copy(update={"categories": VOCABULARY.categories + ["lamp"]}), QC)
    assert sum(server.calls.values()) - before == 3


def test_two_runs_on_one_cache_ask_each_sample_once(stub, tmp_path):
    server, url = stub(latency=0.05)
    cfg, client = teacher_cfg(url, tmp_path, concurrency=4)
    (tmp_path / "args.json").write_text(to_json([records(40), cfg, client, VOCABULARY, QC]))
    code = (f"import json, os, sys\nos.environ['TEACHER_API_KEY'] = 'k'\nsys.path.insert(0, {str(REPO)!r})\n"
            "from tests.typed_call import call\n"
            "labels, rejects, usage = call('tests.conftest:label', "
            f"json.load(open({str(tmp_path / 'args.json')!r})))\n"
            "print(json.dumps([len(labels), usage['api_calls'], usage['cached']]))\n")
    env = {**os.environ, "PYTHONPATH": ""}  # this checkout's code, not a project copy another test bootstrapped
    runs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
    results = [json.loads(run.communicate(timeout=120)[0].strip().splitlines()[-1]) for run in runs]
    assert [r[0] for r in results] == [40, 40]
    assert set(server.calls.values()) == {1} and len(server.calls) == 40  # counted at the server
    assert sum(r[1] for r in results) == 40 and sum(r[2] for r in results) == 40  # one run's call is the other's cache hit


def test_configuration_errors_stop_the_run_with_the_servers_message_and_are_never_cached(tmp_path):
    from aiohttp import web

    from .openai_stub import serve_app

    async def pinned(request):
        body = await request.json()
        return web.json_response({"detail": f"Server is pinned to model tiny-student, got {body['model']}"}, status=400)

    with serve_app([web.post("/v1/chat/completions", pinned)]) as url:
        cfg, client = teacher_cfg(url, tmp_path)
        for _ in range(2):  # a rerun asks again: the failure was not cached as the sample's outcome
            with pytest.raises(ServerConfigError, match="answered HTTP 400: Server is pinned to model tiny-student"):
                label(records(2), cfg, client, VOCABULARY, QC)
    assert ResponseCache(cfg.openai.cache_path).db.execute("SELECT count(*) FROM outcomes").fetchone()[0] == 0


def test_server_without_batch_api_is_named(stub, tmp_path):
    from aiohttp import web

    from .openai_stub import serve_app

    async def missing(request):
        return web.json_response({"detail": "Not Found"}, status=404)

    with serve_app([web.post("/v1/files", missing)]) as url:
        with pytest.raises(ServerConfigError, match=r"has no Batch API .*use teacher_labeling.backend=openai"):
            label(records(2), *teacher_cfg(url, tmp_path, backend="openai_batch"), VOCABULARY, QC)
    server, url = stub()
    server.batches_never_finish = True
    with pytest.raises(CallFailed, match=r"still in_progress after 0.3 s"):
        label(records(2), *teacher_cfg(url, tmp_path, backend="openai_batch", batch_deadline_s=0.3),
                       VOCABULARY, QC)


def test_credentials_entry_sets_the_variable_conf_names(project, monkeypatch):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    (project / "conf/local/credentials.yml").write_text("teacher_api: {api_key: from-credentials}\n")
    monkeypatch.delenv("TEACHER_API_KEY", raising=False)
    monkeypatch.delenv("MY_TEACHER_KEY", raising=False)
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        session.load_context()
    assert os.environ["TEACHER_API_KEY"] == "from-credentials"
    # renaming the variable in conf moves the key with it
    params = {"teacher_labeling": {"openai": {"api_key_env": "MY_TEACHER_KEY"}}}
    with KedroSession.create(project_path=project, runtime_params=params) as session:
        session.load_context()
    assert os.environ["MY_TEACHER_KEY"] == "from-credentials"


CONTEXT_LENGTH = {  # the servers' own words
    "openai": {"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages "
                                    "resulted in 9120 tokens. Please reduce the length of the messages.",
                         "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}},
    "vllm": {"object": "error", "message": "This model's maximum context length is 2048 tokens. However, you "
                                          "requested 2311 tokens (1927 in the messages, 384 in the completion). "
                                          "Please reduce the length of the messages or completion.",
             "type": "BadRequestError", "param": None, "code": 400},
}


def test_a_context_length_400_rejects_that_sample_and_a_deep_reply_is_a_paid_rejection(tmp_path):
    """A prompt too long for the model is that sample's fate (OpenAI's and vLLM's words), not a configuration
    error; a reply nested 3,000 deep is a bad answer, kept as such: a rerun pays for neither again."""
    from aiohttp import web

    from .openai_stub import serve_app

    calls = Counter()
    deep = '{"a": ' + "[" * 3000 + "]" * 3000 + "}"

    async def chat(request):
        body = await request.json()
        marker = re.search(r"MARK-\d+", json.dumps(body["messages"])).group(0)
        calls[marker] += 1
        if marker in ("MARK-1", "MARK-2"):
            return web.json_response(CONTEXT_LENGTH["openai" if marker == "MARK-1" else "vllm"], status=400)
        content = deep if marker == "MARK-3" else json.dumps(summary_for(marker))
        return web.json_response({"choices": [{"message": {"content": content}, "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 10, "completion_tokens": 10}})

    with serve_app([web.post("/v1/chat/completions", chat)]) as url:
        cfg, client = teacher_cfg(url, tmp_path, stream=False, qc_retries=0)
        labels, rejects, usage = label(records(5), cfg, client, VOCABULARY, QC)
        assert sorted(r["sample_id"] for r in labels) == ["s0", "s4"]
        assert {r["sample_id"]: r["reason"] for r in rejects} == {
            "s1": "prompt_too_long", "s2": "prompt_too_long", "s3": "invalid_json"}
        assert "maximum context length is 2048" in next(r["detail"] for r in rejects if r["sample_id"] == "s2")
        assert usage["api_calls"] == 5
        first = dict(calls)
        labels, rejects, usage = label(records(5), cfg, client, VOCABULARY, QC)
        assert dict(calls) == first and usage["api_calls"] == 0 and usage["cached"] == 5


def test_a_key_the_server_echoes_is_masked_in_logs_rejects_and_the_cache(tmp_path, caplog):
    from aiohttp import web

    from .openai_stub import serve_app

    async def echo(request):
        body = await request.json()
        said = f"bad request from {request.headers['Authorization']} (also sk-proj-{'A1' * 12}) for {SECRET}"
        if "MARK-0" in json.dumps(body["messages"]):
            return web.json_response({"error": {"message": said}}, status=400)
        return web.json_response({"error": {"message": said}}, status=500)

    caplog.set_level(logging.DEBUG)
    with serve_app([web.post("/v1/chat/completions", echo)]) as url:
        cfg, client = teacher_cfg(url, tmp_path, stream=False, max_attempts=2)
        labels, rejects, _ = label(records(2), cfg, client, VOCABULARY, QC)
    assert not labels and {r["reason"] for r in rejects} == {"api_error", "server_error"}
    stored = ResponseCache(cfg.openai.cache_path).db.execute("SELECT * FROM outcomes").fetchall()
    everything = caplog.text + json.dumps(rejects) + json.dumps(stored)
    assert "[redacted]" in json.dumps(rejects)
    assert SECRET not in everything and "S3cr3tK3y" not in everything and "sk-proj-A1" not in everything


def test_a_man_is_a_person_and_a_description_is_judged_by_what_it_names():
    from thinking_summarizer.text.summary_qc import SummaryQCError, check_summary

    summary = {"key_points": ["A man sits.", "He frowns.", "He is sad."],
               "objects": [{"category": "man", "description": "a man", "priority": "primary"},
                           {"category": "face", "description": "his face", "priority": "secondary"},
                           {"category": "table", "description": "a table by the window", "priority": "secondary"}],
               "emotion_indicators": ["frown"], "sam3_prompts": ["man", "man's face", "table"]}
    assert [o.description for o in check_summary(summary, VOCABULARY, QC).objects][0] == "a man"
    summary["objects"][2]["description"] = "the one"
    with pytest.raises(SummaryQCError, match="names nothing"):
        check_summary(summary, VOCABULARY, QC)
    teacher = build_teacher(PARAMS.model_copy(update={"backend": "extractive"}), VOCABULARY, QC, CLIENT)
    chain = ("Okay, the clip shows a man. His brow is furrowed and his mouth turned down. "
             "The man speaks slowly, in a low voice. I conclude he is feeling sad.")
    outcome = teacher.label_all([("s", chain)])[0]
    assert outcome.status == "labelled", outcome.detail
    people = [o for o in outcome.summary["objects"] if o["category"] == "person"]
    assert [o["description"] for o in people] == ["a man"]


def test_a_qc_retry_that_fails_transiently_keeps_the_paid_answer_as_the_fate(stub, tmp_path):
    """The first answer was paid for and judged (a placeholder); the retry meets only 500s. The sample is
    rejected for its placeholder and cached so: a rerun pays nothing for it."""
    server, url = stub(script={"MARK-1": ["placeholder", "500", "500", "500"]})
    cfg, client = teacher_cfg(url, tmp_path, max_attempts=3)
    labels, rejects, usage = label(records(2), cfg, client, VOCABULARY, QC)
    assert [r["sample_id"] for r in labels] == ["s0"]
    assert [(r["sample_id"], r["reason"]) for r in rejects] == [("s1", "placeholder")]
    assert "asking again failed: server_error" in rejects[0]["detail"]
    assert server.calls["MARK-1"] == 4
    label(records(2), cfg, client, VOCABULARY, QC)
    assert server.calls["MARK-1"] == 4 and server.calls["MARK-0"] == 1


def test_an_empty_answer_keeps_json_mode_and_a_markdown_answer_is_used_not_paid_again(tmp_path):
    """A filtered empty answer says nothing about the server's modes; a server that answers markdown in JSON mode
    has those answers used (one request per sample), and the mode switches for the rest."""
    from aiohttp import web

    from thinking_summarizer.schemas import Summary
    from thinking_summarizer.text.summary_format import render

    from .openai_stub import serve_app

    asked: list[tuple[str, bool]] = []

    async def chat(request):
        body = await request.json()
        marker = re.search(r"MARK-\d+", json.dumps(body["messages"])).group(0)
        asked.append((marker, "response_format" in body))
        if marker == "MARK-0":
            choice = {"message": {"content": ""}, "finish_reason": "content_filter"}
        else:
            choice = {"message": {"content": render(Summary(**summary_for(marker)), category_lookup(VOCABULARY))}, "finish_reason": "stop"}
        return web.json_response({"choices": [choice], "usage": {"prompt_tokens": 5, "completion_tokens": 5}})

    with serve_app([web.post("/v1/chat/completions", chat)]) as url:
        cfg, client = teacher_cfg(url, tmp_path, stream=False, concurrency=1, response_format="auto")
        labels, rejects, usage = label(records(4), cfg, client, VOCABULARY, QC)
    assert sorted(r["sample_id"] for r in labels) == ["s1", "s2", "s3"]
    assert [(r["sample_id"], r["reason"]) for r in rejects] == [("s0", "refusal")]
    assert len(asked) == 5  # s0 twice (its QC retry), then one request for each other sample
    assert asked[:3] == [("MARK-0", True), ("MARK-0", True), ("MARK-1", True)]  # still JSON after the empty one
    assert all(not json_mode for _, json_mode in asked[3:])  # markdown once the server showed it ignores JSON


def test_a_hung_server_costs_a_few_timeouts_not_samples_times_timeout(tmp_path):
    """Every request hangs: after `circuit_breaker_timeouts` in a row the rest fail at once, left for a rerun
    (nothing cached), instead of 20 samples x 2 attempts x the timeout."""
    import asyncio as aio

    from aiohttp import web

    from .openai_stub import serve_app

    calls = Counter()

    async def hang(request):
        calls["all"] += 1
        await aio.sleep(30)
        return web.json_response({})

    with serve_app([web.post("/v1/chat/completions", hang)]) as url:
        cfg, client = teacher_cfg(url, tmp_path, stream=False, concurrency=2, timeout_s=0.5)
        started = time.perf_counter()
        # no request was answered: the run stops, saying how the 20 samples failed
        with pytest.raises(RuntimeError, match=r"was answered \((timeout x\d+, )?server_unavailable x(1[5-9]|20)"):
            label(records(20), cfg, client.model_copy(update={"circuit_breaker_timeouts": 4}), VOCABULARY, QC)
        elapsed = time.perf_counter() - started
    assert calls["all"] <= 6 and elapsed < 8  # serially it would be 20 x 2 x 0.5 s = 20 s and 40 requests
    assert ResponseCache(cfg.openai.cache_path).db.execute("SELECT count(*) FROM outcomes").fetchone() == (0,)
    assert ResponseCache(cfg.openai.cache_path).db.execute("SELECT count(*) FROM outcomes").fetchone()[0] == 0


def test_a_server_that_answers_one_request_at_a_time_is_queueing_not_hung(tmp_path):
    """vLLM on a CPU or a one-slot server: with 24 requests sent at once, the last ones time out while the server
    keeps answering the first. That is a queue, not a hung server: the circuit stays closed, the limit is halved
    once, and the timed-out samples are asked again and answered."""
    import asyncio as aio

    from aiohttp import web

    from .openai_stub import serve_app

    gate, answered = aio.Lock(), Counter()

    async def one_at_a_time(request):
        body = await request.json()
        marker = re.search(r"MARK-\d+", json.dumps(body["messages"])).group(0)
        async with gate:
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=499)  # the client gave up: dropped, as vLLM aborts it
            await aio.sleep(0.1)
            answered[marker] += 1
        return web.json_response({"choices": [{"message": {"role": "assistant",
                                                           "content": json.dumps(summary_for(marker))}}],
                                  "usage": {"prompt_tokens": 10, "completion_tokens": 10}})

    with serve_app([web.post("/v1/chat/completions", one_at_a_time)]) as url:
        cfg, client = teacher_cfg(url, tmp_path, stream=False, concurrency=24, timeout_s=1.0, max_attempts=4)
        labels, rejects, _ = label(records(24), cfg, client.model_copy(update={"circuit_breaker_timeouts": 4}),
                                            VOCABULARY, QC)
    assert len(labels) == 24 and rejects == [], Counter(r["reason"] for r in rejects)
    assert len(answered) == 24


def test_an_empty_stream_and_a_drip(tmp_path):
    """An SSE stream with no `data:` line is an empty answer (JSON mode kept); a server that drips one byte at a
    time is cut at the whole answer's timeout, not kept waiting for as long as it drips."""
    import asyncio as aio

    from aiohttp import web

    from .openai_stub import serve_app

    asked: list[tuple[str, bool]] = []

    async def chat(request):
        body = await request.json()
        marker = re.search(r"MARK-\d+", json.dumps(body["messages"])).group(0)
        asked.append((marker, "response_format" in body))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if marker == "MARK-0":
            await response.write(b": keep-alive\n\n: still here\n\n")
        elif marker == "MARK-1":
            for _ in range(100):
                await response.write(b":")
                await aio.sleep(0.1)
        else:
            chunk = {"choices": [{"delta": {"content": json.dumps(summary_for(marker))}, "finish_reason": "stop"}]}
            await response.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())
        return response

    with serve_app([web.post("/v1/chat/completions", chat)]) as url:
        cfg, client = teacher_cfg(url, tmp_path, concurrency=1, timeout_s=0.6, response_format="auto")
        started = time.perf_counter()
        labels, rejects, _ = label(records(3), cfg, client, VOCABULARY, QC)
        elapsed = time.perf_counter() - started
    assert [r["sample_id"] for r in labels] == ["s2"]
    assert {r["sample_id"]: r["reason"] for r in rejects} == {"s0": "malformed", "s1": "timeout"}
    assert all(json_mode for _, json_mode in asked)  # the empty stream did not switch the server to markdown
    assert elapsed < 6  # the drip would have lasted 10 s per attempt


def test_key_points_are_whole_clauses_different_and_never_the_narration_of_watching():
    """A long conclusion is cut between clauses and keeps its emotion; the watching is no key point; no
    key point twice (issue 21: "... I conclude she is feeling.", "Okay, I'm watching this video.")."""
    chain = ("Okay, I'm watching this video. A woman in a grey cardigan sits by a window on the left. "
             "Her shoulders are slumped and her eyes are downcast. "
             "Her shoulders are slumped and her eyes are downcast. "
             "Taking together the slumped shoulders, the downcast eyes, the long pauses before each answer, the way "
             "she keeps turning the ring on her finger while she talks about the hospital, and the quiet, uneven "
             "voice, I conclude she is feeling deep sadness and worry.")
    points = EXTRACTIVE.summarize(chain)["key_points"]
    assert len(points) == 3 and len({p.lower() for p in points}) == 3, points
    assert not any(p.lower().startswith("okay") for p in points), points
    limit = PARAMS.extractive.key_point_chars
    conclusion = points[2]
    assert "sadness and worry" in conclusion and len(conclusion) <= limit, conclusion
    assert not re.search(r"\b(feeling|is|and|the|a)\.$", conclusion), conclusion
    # a first clause longer than the limit is kept whole, not cut inside
    long_clause = ("The man in the dark blue suit who has been standing behind the counter for the whole clip without "
                   "once looking up from the papers that he keeps shuffling between his two hands as the customers "
                   "wait in line looks tense and irritated.")
    assert len(long_clause) > limit
    assert long_clause in EXTRACTIVE.summarize(long_clause + " So the answer is irritated.")["key_points"]


def test_an_ellipsis_or_a_quoted_list_copied_from_the_chain_is_no_placeholder():
    patterns = QC.placeholder_patterns
    assert find_placeholders({"key_points": ["She says she is fine... but her voice breaks.",
                                             "The options were ['Positive', 'Happy'] and she picks one…"]}, patterns) == []
    assert find_placeholders({"k": "a [color] shirt ..."}, patterns) == ["[color]", "..."]
    assert find_placeholders({"k": ["...", "[ shirt ]", "…"]}, patterns) == ["...", "[ shirt ]", "…"]


def test_the_concluded_emotion_comes_first_and_denied_or_imagined_cues_are_no_indicators():
    chain = ("A man in a grey hoodie sits at a desk in the middle. I'd expect a furrowed brow if he were angry, but "
             "I'm not seeing any of that. He isn't agitated at all, and there are no tears. His relaxed shoulders "
             "and steady gaze stand out, and he is smiling a little. He is not frowning. "
             "So the answer is that he is calm.")
    indicators = EXTRACTIVE.summarize(chain)["emotion_indicators"]
    assert indicators[0] == "calm", indicators
    assert {"relaxed shoulders", "steady gaze", "smiling"} <= set(indicators), indicators
    assert not {"furrowed brow", "agitated", "tears", "frowning", "angry"} & set(indicators), indicators


def test_a_chain_of_two_sentences_gives_three_different_key_points_from_its_clauses():
    points = EXTRACTIVE.summarize("The man in a blue shirt on the right frowns; his jaw is clenched and his fists are "
                                  "tight. So the answer is angry.")["key_points"]
    assert len(points) == 3 and len({p.lower() for p in points}) == 3, points
    assert points[-1] == "So the answer is angry.", points


def test_a_server_failing_every_request_the_same_way_stops_the_run_with_its_words(tmp_path):
    """A deterministic 500 (the server cannot take the request) is asked `same_error_attempts` times, not
    `max_attempts`; when no request was answered the run stops naming the first error and the count, and caches
    none of it, so a rerun against a fixed server asks again."""
    from aiohttp import web

    from .openai_stub import serve_app

    calls = []

    async def broken(request):
        calls.append(await request.json())
        return web.json_response({"error": {"message": "Incorrect format used for video"}}, status=500)

    with serve_app([web.post("/v1/chat/completions", broken)]) as url:
        cfg, client = teacher_cfg(url, tmp_path, max_attempts=6)
        with pytest.raises(RuntimeError, match=r"no request to .* was answered \(server_error x3\); the first: s0: "
                                               r"server_error: HTTP 500: Incorrect format used for video \(3 times"):
            label(records(3), cfg, client, VOCABULARY, QC)
    assert len(calls) == 9 == 3 * CLIENT.same_error_attempts
    assert ResponseCache(cfg.openai.cache_path).db.execute("SELECT count(*) FROM outcomes").fetchone() == (0,)


def test_a_burst_of_timeouts_halves_the_limit_once_and_it_grows_back():
    """64 requests sent together into an overloaded server all time out: one overload, so the limit halves once
    (the old rule halved 64 times, to 1, and a slow server then took hours); a failure of a request sent after the
    halving halves again; successes grow it back by one per `limit` answers."""
    from thinking_summarizer.io.openai_client import AdaptiveLimit

    limit = AdaptiveLimit(64)
    sent = limit.epoch
    for _ in range(64):
        limit.congested(sent)
    assert limit.limit == 32
    limit.congested(limit.epoch)
    assert limit.limit == 16
    for _ in range(16 + 17):
        limit.succeeded()
    assert limit.limit == 18
    # a server that answered 10 requests within the last timeout takes 8 at once (CAPACITY_MARGIN), not 9
    limit.congested(limit.epoch, capacity=10)
    assert limit.limit == 8
    limit.congested(limit.epoch, capacity=0)  # nothing answered: halve
    assert limit.limit == 4
    limit.congested(limit.epoch, capacity=1)  # one answer per timeout: one request at a time, not half of 4
    assert limit.limit == 1


def test_the_label_check_counts_what_a_reader_would_not_keep():
    """Each check on a chain written to trip it once, and a clean label that trips none."""
    from thinking_summarizer.text.label_quality import LabelChecker, quality_report

    chain = ("Okay, I'm watching this video. A man in a grey suit stands by the window and speaks quietly. "
             "I'd expect a furrowed brow if he were angry, but I'm not seeing any of that. His shoulders drop and "
             "his voice trembles. I conclude he is feeling sad.")
    bad = {"key_points": ["Okay, I'm watching this video.", "His shoulders drop and his voice trembles.",
                          "His shoulders drop and his voice trembles.", "I conclude he is feeling"][1:] +
                         ["Okay, I'm watching this video."],
           "objects": [{"category": "window", "description": "the window", "priority": "primary"},
                       {"category": "plant", "description": "a green plant", "priority": "secondary"}],
           "emotion_indicators": ["sad", "furrowed brow"], "sam3_prompts": ["window", "green plant"]}
    good = {"key_points": ["A man in a grey suit stands by the window and speaks quietly.",
                           "His shoulders drop and his voice trembles.", "I conclude he is feeling sad."],
            "objects": [{"category": "person", "description": "a man in a grey suit", "priority": "primary"},
                        {"category": "window", "description": "the window", "priority": "secondary"}],
            "emotion_indicators": ["sad", "voice trembles"], "sam3_prompts": ["man in grey suit", "window"]}
    checker = LabelChecker(PARAMS.extractive, VOCABULARY, QC.empty_description_words)
    assert checker.problems(bad, chain) == {
        "cut_key_points": 1, "duplicate_key_points": 1, "boilerplate_key_points": 1, "negated_indicators": 1,
        "people_without_person_object": 1, "ungrounded_objects": 1}
    assert set(checker.problems(good, chain).values()) == {0}
    report = quality_report([{"sample_id": "b", "summary": bad}, {"sample_id": "g", "summary": good}],
                            {"b": chain, "g": chain}, checker, max_examples=5)
    assert report["labels_checked"] == 2 and report["ungrounded_objects"] == 1
    assert report["examples"] == {check: ["b"] for check in report["examples"]} and len(report["examples"]) == 6


def test_clothing_is_carried_across_describing_words_and_stops_at_a_new_phrase():
    teacher = build_teacher(PARAMS.model_copy(update={"backend": "extractive"}), VOCABULARY, QC, CLIENT)

    def people(chain: str) -> list[str]:
        outcome = teacher.label_all([("s", chain)])[0]
        assert outcome.status == "labelled", outcome.detail
        return [o["description"] for o in outcome.summary["objects"] if o["category"] == "person"]

    assert people("The video shows a lady in a beautiful red traditional dress standing in a lovely garden. She "
                  "smiles warmly and her eyes are bright. I conclude she is feeling happy.") == [
        "a lady in a red traditional dress standing in a lovely garden"]
    assert people("A man wearing a dark blue jacket sits at a wooden table. His brow is furrowed and his jaw is "
                  "tight. I conclude he is feeling angry.") == ["a man in a dark blue jacket"]
    # "with" starts another phrase: the kitchen is where he is, not what he wears
    assert people("A man in the kitchen with a blue shirt looks down. His shoulders slump and his eyes are "
                  "downcast. I conclude he is sad.") == ["a man in a kitchen"]


def test_content_as_a_noun_is_no_emotion_and_content_as_a_feeling_is():
    teacher = build_teacher(PARAMS.model_copy(update={"backend": "extractive"}), VOCABULARY, QC, CLIENT)

    def indicators(chain: str) -> list[str]:
        return teacher.label_all([("s", chain)])[0].summary["emotion_indicators"]

    assert "content" not in indicators("A man in a grey suit speaks at a desk. His brow is furrowed. Judging by the "
                                       "content of his speech and his tone, I conclude he is feeling angry.")
    assert indicators("A woman in a red coat sits on a brown sofa beside a white cup. She smiles softly and her "
                      "eyes are calm. I conclude she is feeling content.")[0] == "content"


def test_a_person_out_of_view_is_no_object():
    teacher = build_teacher(PARAMS.model_copy(update={"backend": "extractive"}), VOCABULARY, QC, CLIENT)
    chain = ("A woman in a green sweater sits at a wooden table with a white cup. Someone just out of my view, a man, "
             "asks her a question. She frowns and her lips are pressed together. I conclude she is feeling annoyed.")
    summary = teacher.label_all([("s", chain)])[0].summary
    people = [o["description"] for o in summary["objects"] if o["category"] == "person"]
    assert people == ["a woman in a green sweater"]


def test_a_person_only_quoted_is_no_object_but_a_seen_speaker_is():
    quoted = EXTRACTIVE.summarize(
        "A woman in a red dress sits on a sofa. She frowns at what the other person said, and her voice is sharp. "
        "Her hands are clenched. She seems angry.")
    assert [o["description"] for o in quoted["objects"] if o["category"] == "person"] == ["a woman in a red dress"]
    seen = EXTRACTIVE.summarize(
        "A man in a blue shirt talks to a woman in a green coat. The man says he is leaving. Her eyes are red. "
        "She looks sad.")
    assert [o["description"] for o in seen["objects"] if o["category"] == "person"] == [
        "a man in a blue shirt", "a woman in a green coat"]


def test_qc_keeps_the_first_emotion_indicators_up_to_the_grammars_count():
    """A teacher's longer list is cut to `summary_qc.max_emotion_indicators` (the concluded emotions come first),
    the count the student's grammar allows."""
    from thinking_summarizer.text.summary_qc import check_summary

    cues = [f"cue {i}" for i in range(QC.max_emotion_indicators + 3)]
    summary = {"key_points": ["A man sits.", "He frowns.", "He is sad."],
               "objects": [{"category": "man", "description": "a man", "priority": "primary"},
                           {"category": "face", "description": "his face", "priority": "secondary"},
                           {"category": "table", "description": "a table by the window", "priority": "secondary"}],
               "emotion_indicators": cues, "sam3_prompts": ["man", "man's face", "table"]}
    assert check_summary(summary, VOCABULARY, QC).emotion_indicators == cues[: QC.max_emotion_indicators]
