"""LoRA training of a tiny student: loss, adapter, what it logs to MLflow, registry round trip, resume, errors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from datasets import Dataset
from kedro.io.core import DatasetError
from mlflow import MlflowClient
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from thinking_summarizer.demo.scenes import make_scene
from thinking_summarizer.io.model_datasets import AdapterDataset
from thinking_summarizer.pipelines.dataset_build.nodes import summary_grammar
from thinking_summarizer.pipelines.demo_data.nodes import build_tiny_student
from thinking_summarizer.pipelines.lora_training.nodes import prepare_base_model, release_student, train_student
from thinking_summarizer.schemas import Summary
from thinking_summarizer.schemas.params.tiny import TinyModels
from thinking_summarizer.schemas.params.training import LoraTraining
from thinking_summarizer.student import from_adapter, load_student, read_card, untrained
from thinking_summarizer.student.registry import VERIFIED, RegisteredStudentDataset
from thinking_summarizer.student.training import TrainingDivergedError
from thinking_summarizer.teachers import build_teacher
from thinking_summarizer.text.summary_format import category_lookup, render
from thinking_summarizer.tracking.record import MlflowRecordDataset

from .conftest import REPO, TINY_MODELS, kill_when, tiny_model_dir, typed, working_dir


def register_student(training: dict, registry: dict) -> dict:
    """As the pipeline does it: the node's release saved to the registered-student dataset, then loaded."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        adapter = AdapterDataset(filepath=f"{folder}/student_adapter.json")
        adapter.save(training["adapter_dir"])
        dataset = RegisteredStudentDataset(filepath=f"{folder}/registered_student.json")
        try:
            dataset.save(release_student(training, adapter.load(), lora_section(PARAMS | {"registry": registry})))
        except DatasetError as err:  # Kedro wraps what a save raises
            raise err.__cause__ from None
        return dataset.load()


PARAMS = yaml.safe_load((REPO / "conf/base/parameters_lora_training.yml").read_text())["lora_training"]
VOCABULARY, QC = typed("vocabulary"), typed("summary_qc")
GRAMMAR = summary_grammar(VOCABULARY, QC)
TEACHER = typed("teacher_labeling")
DEMO = typed("demo_data")
INSTRUCTION = "Summarise the reasoning."


def chats(first: int, count: int) -> Dataset:
    teacher = build_teacher(TEACHER, VOCABULARY, QC, typed("openai_client"))
    rows = []
    for i in range(first, first + count):
        thinking = make_scene(i, DEMO).thinking
        summary = teacher.label_all([(str(i), thinking)])[0].summary
        rows.append({"sample_id": str(i), "messages": [{"role": "system", "content": INSTRUCTION},
                                                        {"role": "user", "content": thinking},
                                                        {"role": "assistant", "content": render(Summary(**summary), category_lookup(VOCABULARY))}]})
    return Dataset.from_list(rows)


@pytest.fixture(scope="module")
def data() -> tuple[Dataset, Dataset]:
    return chats(0, 24), chats(100, 6)


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    """One MLflow sqlite store for this module."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("tests")  # not the one an earlier test's session left active in this process
        yield {"experiment": "tests"}


@pytest.fixture(scope="module")
def base_dir(data, tmp_path_factory) -> Path:
    """One tiny pre-trained base for every test here, built in a project-like folder's data/."""
    base = tiny_model_dir(tmp_path_factory, "base")
    with working_dir(base.parents[2]):
        prepare(data[0], config(base.parent, base))
    return base


def lora_section(cfg: dict) -> LoraTraining:
    """The test's config (lora_training's keys, and `tiny`) as the node gets lora_training's section."""
    return LoraTraining.model_validate({k: v for k, v in cfg.items() if k != "tiny"})


def prepare(train_chat: Dataset, cfg: dict) -> dict:
    """The base as the default run gets it: demo_data builds the tiny one from the test's recipe (`cfg["tiny"]`,
    None: none), lora_training takes it."""
    recipes = TinyModels(student=cfg["tiny"])
    return prepare_base_model(build_tiny_student(train_chat, recipes, cfg["base_model"]), lora_section(cfg))


def config(tmp_path: Path, base_dir: Path, **trainer) -> dict:
    cfg = json.loads(json.dumps(PARAMS)) | {"tiny": TINY_MODELS.student.model_dump(mode="json")}
    cfg["base_model"] = str(base_dir)
    cfg["output_dir"] = str(tmp_path / "runs")
    cfg["tiny"] |= {"vocab_size": 600, "model": {"hidden_size": 64, "layers": 2, "heads": 2, "kv_heads": 2,
                                                  "max_positions": 1024, "rope_theta": 1e8,
                                                  "tie_embeddings": False},
                    "pretrain": cfg["tiny"]["pretrain"] | {"steps": 120}}
    cfg["tiny"]["trainer"] = {"learning_rate": 1e-3, "num_train_epochs": 2, "per_device_train_batch_size": 4,
                              "per_device_eval_batch_size": 6, "gradient_accumulation_steps": 1,
                              "logging_steps": 1, "eval_strategy": "steps", "eval_steps": 3,
                              "early_stopping_patience": 10} | trainer
    return cfg


def train(data, cfg) -> tuple[dict, dict]:
    base = prepare(data[0], cfg)
    return base, train_student(data[0], data[1], base, lora_section(cfg), INSTRUCTION, GRAMMAR)[0]


@pytest.fixture(scope="module")
def trained(data, base_dir, tracking, tmp_path_factory) -> tuple[dict, dict, str]:
    """Trained and logged as `kedro run` does it: inside the training stage's run, the record saved through
    its catalog dataset."""
    cfg = config(tmp_path_factory.mktemp("trained"), base_dir, num_train_epochs=4)
    base = prepare(data[0], cfg)
    with mlflow.start_run() as run:
        result, record, _ = train_student(data[0], data[1], base, lora_section(cfg), INSTRUCTION, GRAMMAR)
        MlflowRecordDataset().save(record)
    return cfg, result, run.info.run_id


def test_training_lowers_the_loss_and_logs_everything(data, trained, tracking):
    cfg, result, run_id = trained
    losses = [h["loss"] for h in result["loss_history"] if "loss" in h]
    assert len(losses) == 24 and sum(losses[-3:]) < 0.95 * sum(losses[:3])
    adapter = Path(result["adapter_dir"])
    settings = json.loads((adapter / "adapter_config.json").read_text())
    assert (settings["r"], settings["lora_alpha"], settings["lora_dropout"]) == (64, 128, 0.05)
    assert set(settings["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "tokenizer.json").is_file()
    client = MlflowClient()
    run = client.get_run(run_id)
    assert sorted(d.dataset.name for d in run.inputs.dataset_inputs) == ["train_chat", "val_chat"]
    assert {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}["train_chat"] == \
        yaml.safe_load((adapter.parent / "training_config.yml").read_text())["data"]["train_sha"]
    assert run.data.tags["training_id"] == result["training_id"] == adapter.parent.name
    # every logging step as it came (the trainer's callback), not only the final numbers
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == list(range(1, 25))
    assert len(client.get_metric_history(run_id, "eval_loss")) >= 8
    for key in ("learning_rate", "tokens_per_second", "peak_memory_mb", "trainable_parameters", "best_eval_loss"):
        assert key in run.data.metrics, key
    base_size = sum(p.numel() for p in untrained(cfg["base_model"], "").model.parameters())
    lora = run.data.metrics["trainable_parameters"]
    # r x (in + out) per adapted projection: 2 layers x (q, k, v, o) on a 64-wide model, as many kv heads as heads
    assert lora == 2 * 64 * 4 * (64 + 64)
    assert run.data.metrics["trainable_fraction"] == pytest.approx(lora / (base_size + lora))
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"adapter", "loss_curve.png", "training_config.yml"} <= artifacts
    assert "adapter/adapter_model.safetensors" in {a.path for a in client.list_artifacts(run_id, "adapter")}
    # a rerun with the same config and data reuses the finished training, and its record says so
    base = prepare(data[0], cfg)
    again, record, _ = train_student(data[0], data[1], base, lora_section(cfg), INSTRUCTION, GRAMMAR)
    assert again == result and record.tags == {"training_id": result["training_id"], "reused": "true"}
    # the grammar is no part of training: a reuse under another one (new QC limits) carries the new one
    train_student(data[0], data[1], base, lora_section(cfg), INSTRUCTION, "## Key points\\n.*")
    assert read_card(result["adapter_dir"])["grammar"] == "## Key points\\n.*"
    train_student(data[0], data[1], base, lora_section(cfg), INSTRUCTION, GRAMMAR)
    assert read_card(result["adapter_dir"])["grammar"] == GRAMMAR


def test_registered_student_reproduces_the_trained_logits(data, trained):
    cfg, result, _ = trained
    registered = register_student(result, cfg["registry"] | {"name": "test-student"})
    assert registered["max_logit_difference"] == 0.0 and registered["bundled_base"]
    thinking = data[1]["messages"][0][1]["content"]
    trained = from_adapter(result["adapter_dir"])
    for uri in (registered["model_uri"], "models:/test-student@candidate"):
        reloaded = load_student(uri)
        assert torch.equal(reloaded.logits(thinking), trained.logits(thinking))
    base = untrained(cfg["base_model"], INSTRUCTION)
    assert not torch.allclose(base.logits(thinking), trained.logits(thinking)), "the adapter must change the model"
    summary = load_student(registered["model_uri"], merge=True).summarize([thinking], 1, 64)
    assert summary.texts[0] and summary.new_tokens[0] > 0
    # the same model served as a plain pyfunc (what `mlflow models serve` calls), adapter unmerged
    served = mlflow.pyfunc.load_model(registered["model_uri"]).predict([thinking], params={"max_new_tokens": 64})
    assert served == trained.summarize([thinking], 1, 64).texts
    # described, tagged, and complete: code and pinned requirements travel with it
    version = MlflowClient().get_model_version("test-student", registered["version"])
    assert "LoRA adapter on" in version.description and version.tags["run_key"] == result["run_key"]
    signature = mlflow.models.get_model_info(registered["model_uri"]).signature
    assert {p.name: p.default for p in signature.params.params} == cfg["registry"]["serving"]  # conf's defaults
    requirements = Path(mlflow.artifacts.download_artifacts(f"{registered['model_uri']}/requirements.txt")).read_text()
    assert {"torch", "transformers", "peft", "pandas", "pydantic"} <= {r.split("==")[0] for r in requirements.split()}


LOAD_ELSEWHERE = """
import importlib.util, json, sys
sys.path = [p for p in sys.path if not p.rstrip("/").endswith("/src")]
sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
assert importlib.util.find_spec("thinking_summarizer") is None, "the project must not be importable here"
import mlflow
model = mlflow.pyfunc.load_model(sys.argv[1], model_config={"device": "cpu", "dtype": "float32"})
print(json.dumps(model.predict([sys.argv[2]], params={"max_new_tokens": 32})))
"""


def test_registered_student_loads_where_the_project_is_not(data, trained, tmp_path):
    cfg, result, _ = trained
    registered = register_student(result, cfg["registry"] | {"name": "test-portable", "verify_reload": False})
    thinking = data[1]["messages"][0][1]["content"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    child = subprocess.run([sys.executable, "-c", LOAD_ELSEWHERE, registered["model_uri"], thinking], cwd=elsewhere,
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": "", "DO_NOT_TRACK": "true"})
    assert child.returncode == 0, child.stderr[-3000:]
    assert "were ignored" not in child.stderr  # device and dtype are model config the model declares
    assert json.loads(child.stdout.strip().splitlines()[-1]) == from_adapter(result["adapter_dir"]).summarize(
        [thinking], 1, 32).texts


def test_a_killed_run_resumes_from_its_checkpoint(data, tmp_path, base_dir, tracking):
    cfg = config(tmp_path, base_dir, num_train_epochs=4, learning_rate=1e-3)
    base = prepare(data[0], cfg)
    (tmp_path / "train.json").write_text(json.dumps([data[0].to_list(), data[1].to_list()]))
    runs = Path(cfg["output_dir"])
    code = (
        "import json\nfrom datasets import Dataset\n"
        f"import sys\nsys.path.insert(0, {str(REPO)!r})\nfrom tests.typed_call import call\n"
        f"train, val = json.load(open({str(tmp_path / 'train.json')!r}))\n"
        "call('thinking_summarizer.pipelines.lora_training.nodes:train_student', [Dataset.from_list(train), "
        f"Dataset.from_list(val), {base!r}, {lora_section(cfg).model_dump(mode='json')!r}, {INSTRUCTION!r}, {GRAMMAR!r}])\n"
    )
    kill_when(code, lambda: any(runs.glob("*/checkpoint-6/trainer_state.json")), timeout=300)
    checkpoints = sorted(int(p.name.split("-")[1]) for p in runs.glob("*/checkpoint-*"))
    assert checkpoints and max(checkpoints) < 24, "the run must be killed halfway"
    assert not any(runs.glob("*/result.json"))
    with mlflow.start_run() as run:  # the next `kedro run`'s training stage
        result, record, _ = train_student(data[0], data[1], base, lora_section(cfg), INSTRUCTION, GRAMMAR)
    assert result["resumed_from_step"] == max(checkpoints) and result["metrics"]["steps"] == 24
    assert record.tags["resumed_from_step"] == str(max(checkpoints))
    # the loss history runs from step 1 (restored with the checkpoint); this run logged only what it trained
    assert [h["step"] for h in result["loss_history"] if "loss" in h] == list(range(1, 25))
    steps = [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "train_loss")]
    assert steps == list(range(max(checkpoints) + 1, 25))


def test_missing_base_model_is_named(data, tmp_path, base_dir):
    cfg = config(tmp_path, base_dir) | {"tiny": None, "base_model": "no-such-org/no-such-model"}
    with pytest.raises(FileNotFoundError, match="no-such-org/no-such-model"):
        prepare(data[0], cfg)


def test_a_folder_the_project_did_not_build_is_never_removed(data, tmp_path, base_dir):
    """`base_model=<an existing folder>` in the default env: used as it is (or refused), never replaced."""
    project = tmp_path / "project"
    users = project / "data" / "my-model"
    users.mkdir(parents=True)
    (users / "weights.txt").write_text("precious")
    with working_dir(project):
        with pytest.raises(FileNotFoundError, match="my-model"):
            prepare(data[0], config(tmp_path, base_dir) | {"base_model": str(users)})
        assert (users / "weights.txt").read_text() == "precious"
        # a real model folder of the user's is trained as it is, without the tiny recipe's CPU overrides
        assert prepare(data[0], config(tmp_path, base_dir))["tiny"] is True
        (base_dir / "tiny_recipe.json").rename(tmp_path / "recipe.json")  # now it looks like the user's own
        try:
            assert prepare(data[0], config(tmp_path, base_dir))["tiny"] is False
        finally:
            (tmp_path / "recipe.json").rename(base_dir / "tiny_recipe.json")
        # nothing is built outside the project's data/
        outside = tmp_path / "nope"
        with pytest.raises(FileNotFoundError, match="nope"):
            prepare(data[0], config(tmp_path, base_dir) | {"base_model": str(outside)})
        assert not outside.exists() and not (tmp_path / "nope.building").exists()


def test_empty_train_split_is_refused(data, tmp_path, base_dir, tracking):
    cfg = config(tmp_path, base_dir)
    base = prepare(data[0], cfg)
    with pytest.raises(ValueError, match="train split is empty"):
        train_student(data[0].select([]), data[1], base, lora_section(cfg), INSTRUCTION, GRAMMAR)


def test_long_examples_are_truncated_with_a_count(data, tmp_path, base_dir, tracking, caplog):
    cfg = config(tmp_path, base_dir, max_length=260, num_train_epochs=1)
    with caplog.at_level("WARNING"):
        _, result = train(data, cfg)
    assert result["metrics"]["train_truncated"] > 0
    assert f"{result['metrics']['train_truncated']} of 24 examples longer than max_length=260" in caplog.text


def test_nan_loss_stops_training_at_its_step(data, tmp_path, base_dir, tracking):
    cfg = config(tmp_path, base_dir)
    prepare(data[0], cfg)
    poisoned = AutoModelForCausalLM.from_pretrained(base_dir)
    with torch.no_grad():
        poisoned.model.norm.weight[0] = float("nan")  # what a corrupted checkpoint or an fp16 overflow leaves
    poisoned.save_pretrained(tmp_path / "poisoned")
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(tmp_path / "poisoned")
    cfg |= {"tiny": None, "base_model": str(tmp_path / "poisoned")}
    with pytest.raises(TrainingDivergedError, match=r"loss is nan at step 1 "):
        train(data, cfg)


def test_registering_the_same_training_twice_keeps_one_version(trained):
    cfg, result, _ = trained
    registry = cfg["registry"] | {"name": "test-once", "verify_reload": False}
    first = register_student(result, registry)
    again = register_student(result, registry)
    assert again["version"] == first["version"]
    assert len(MlflowClient().search_model_versions("name='test-once'")) == 1


def test_only_a_version_that_reloads_exactly_gets_the_aliases(trained, tmp_path):
    cfg, result, _ = trained
    client = MlflowClient()
    adapter = Path(shutil.copytree(result["adapter_dir"], tmp_path / "adapter"))
    weights = adapter / "adapter_model.safetensors"
    original = weights.read_bytes()

    def tamper() -> None:  # the folder changed after registration (say, a retrain into the same place)
        tensors = load_file(weights)
        first = sorted(tensors)[0]
        save_file(tensors | {first: tensors[first] + 1.0}, weights)

    copy = result | {"adapter_dir": str(adapter), "training_id": "verify-test"}
    registry = cfg["registry"] | {"name": "test-verify", "aliases": ["candidate"]}
    first = register_student(copy, registry | {"aliases": [], "verify_reload": False})
    tamper()
    with pytest.raises(RuntimeError, match="does not reproduce"):
        register_student(copy, registry | {"verify_reload": True})
    version = client.get_model_version("test-verify", first["version"])
    assert not version.aliases and VERIFIED not in version.tags  # nothing points at an unproven version
    weights.write_bytes(original)
    passed = register_student(copy, registry | {"verify_reload": True})
    assert passed["version"] == first["version"] and passed["max_logit_difference"] == 0.0
    assert client.get_model_version("test-verify", passed["version"]).tags[VERIFIED] == "0"
    assert str(client.get_model_version_by_alias("test-verify", "candidate").version) == passed["version"]
    # verified once, not reloaded again: a rerun trusts the version's tag (a reload would now fail)
    tamper()
    assert register_student(copy, registry | {"verify_reload": True})["max_logit_difference"] == 0.0


def test_the_recipe_is_an_sftconfig_built_from_conf_key_for_key(tmp_path):
    """As trl's scripts do it: every `lora_training.trainer` key is an SFTConfig field (but the project's own two),
    taken as written; a key SFTConfig lacks fails by name instead of being dropped."""
    from thinking_summarizer.student.training import OWN_KNOBS, sft_config

    trainer = lora_section(PARAMS).trainer.model_dump()
    config = sft_config(trainer, tmp_path, bf16=False)
    for key, value in trainer.items():
        if key not in OWN_KNOBS and value != "auto":
            assert getattr(config, key) == value, key
    assert config.get_warmup_steps(1000) == 100  # warmup_steps 0.1: a share of all steps
    assert config.save_strategy == config.eval_strategy and config.load_best_model_at_end
    with pytest.raises(TypeError, match="learning_rat"):
        sft_config(trainer | {"learning_rat": 1e-3}, tmp_path, bf16=False)
