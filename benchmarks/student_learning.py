"""Does the student learn what to write? Object F1 against the demo's ground truth (and against its teacher)
as the number of training examples and steps grows, with a copy analysis per section.

    .venv/bin/python benchmarks/student_learning.py                          # 56, 112, 224, 448 examples, CPU
    .venv/bin/python benchmarks/student_learning.py --examples 224 --set pretrain.steps=0   # one suspect
    .venv/bin/python benchmarks/student_learning.py --examples 256 --epochs 36 --every 12   # the default run's
    .venv/bin/python benchmarks/student_learning.py --examples 224 --recipe benchmarks/recipes/without_circuit.yml

Demo scenes are labelled by the extractive teacher (the default run's teacher); the first `--val` scenes are the
val split (whole scenes: no video on both sides). Each size builds the tiny base from the recipe in
`conf/base/parameters_tiny_models.yml` (`--set key=value` changes one knob of `tiny_models.student`, dotted),
trains it with the project's trainer, and every `--every` epochs writes greedy summaries of the val split and
scores them with the evaluation's own `score_sample`, decoded as the project decodes (held to the format's grammar)
and/or free (`--decoding`). `--base DIR` trains a given base instead (on a GPU, a
real-shaped one). The table goes to `--out` (markdown) with a plot of object F1 against steps.

Copy analysis, per section: `verbatim` is the share of items the student wrote that occur word for word in its
input, `novel` the share with a content word that occurs nowhere in it (an invented colour, object or cue).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from pathlib import Path
from statistics import mean
from typing import Any

import yaml

from _common import ROOT, params, scratch

log = logging.getLogger("student_learning")
_WORD = re.compile(r"[a-z][a-z'-]*")
_STOP = {"a", "an", "the", "in", "on", "of", "and", "with", "to", "is", "at", "his", "her", "their", "s", "none"}
SECTIONS = ("key_points", "objects", "emotion_indicators", "sam3_prompts")


def demo_examples(count: int, offset: int, instruction: str) -> list[dict[str, Any]]:
    """Scenes `offset`.. labelled by the extractive teacher: thinking, teacher summary, truth objects."""
    from thinking_summarizer.demo.scenes import make_scene
    from thinking_summarizer.schemas import Summary
    from thinking_summarizer.teachers import build_teacher
    from thinking_summarizer.text.summary_format import category_lookup, render

    conf = params()
    demo = conf.demo_data
    teacher = build_teacher(conf.teacher_labeling, conf.vocabulary, conf.summary_qc, conf.openai_client)
    rows, index = [], offset
    while len(rows) < count:
        scene = make_scene(index, demo)
        index += 1
        outcome = teacher.label_all([(scene.scene_id, scene.thinking)])[0]
        if not outcome.summary:
            continue
        summary = Summary(**outcome.summary)
        markdown = render(summary, category_lookup(conf.vocabulary))
        rows.append({"thinking": scene.thinking, "summary": summary.model_dump(), "markdown": markdown,
                     "truth": [{"category": o.category, "description": o.description, "priority": o.priority}
                               for o in scene.objects],
                     "messages": [{"role": "system", "content": instruction},
                                  {"role": "user", "content": scene.thinking},
                                  {"role": "assistant", "content": markdown}]})
    return rows


def copy_analysis(text: str, thinking: str) -> dict[str, dict[str, float]]:
    """Per section: share of items found verbatim in the thinking, and share with a content word it lacks."""
    from thinking_summarizer.text.summary_format import category_lookup, parse_lenient

    parsed = parse_lenient(text, category_lookup(params().vocabulary))
    source, words = thinking.lower(), set(_WORD.findall(thinking.lower()))
    out = {}
    for section in SECTIONS:
        items = [o["description"] for o in parsed[section]] if section == "objects" else parsed[section]
        if not items:
            continue
        out[section] = {
            "verbatim": mean(item.lower().rstrip(".") in source for item in items),
            "novel": mean(any(w not in words and w not in _STOP for w in _WORD.findall(item.lower()))
                          for item in items)}
    return out


def score(texts: list[str], val: list[dict[str, Any]]) -> dict[str, float]:
    """The evaluation's metrics (vs truth and vs teacher) and the copy analysis, averaged over the val split."""
    from thinking_summarizer.pipelines.evaluation.nodes import ScoringRules, score_sample

    conf = params()
    rules = ScoringRules.from_params(conf.evaluation, conf.vocabulary, conf.summary_qc)
    rows = [score_sample(t, e["summary"], e["truth"], rules) for t, e in zip(texts, val)]
    keys = ("format_valid", "object_f1/truth", "primary_f1/truth", "object_f1/teacher", "key_point_rouge_l/teacher",
            "emotion_f1/teacher", "prompt_grounding", "placeholder")
    result = {k: round(mean(values), 4) if (values := [r[k] for r in rows if r.get(k) is not None]) else None
              for k in keys}
    copies = [copy_analysis(t, e["thinking"]) for t, e in zip(texts, val)]
    for section in SECTIONS:
        for what in ("verbatim", "novel"):
            values = [c[section][what] for c in copies if section in c]
            result[f"{section}/{what}"] = round(mean(values), 3) if values else None
    return result


def _summarize(model, tokenizer, card: dict[str, Any], val: list[dict[str, Any]], max_new_tokens: int) -> list[str]:
    from thinking_summarizer.student import Student

    was_training = model.training
    student = Student(model, tokenizer, card)
    texts = student.summarize([e["thinking"] for e in val], 16, max_new_tokens).texts
    tokenizer.padding_side = "right"
    model.train(was_training)
    return texts


def run_size(n_train: int, pool: list[dict[str, Any]], val: list[dict[str, Any]], cfg: dict[str, Any],
             tiny: dict[str, Any], instruction: str, every: int, max_new_tokens: int, base_dir: str | None, tmp: Path,
             out: Path, decodings: list[str]) -> list[dict[str, Any]]:
    """Build the base for this train set from the `tiny` recipe (or take `base_dir`), train it, score greedy val
    summaries every `every` epochs, held to the format grammar (`grammar`, as the project decodes) and/or free."""
    from thinking_summarizer.text.summary_format import category_lookup, format_regex

    conf = params()
    grammar = format_regex(conf.summary_qc, category_lookup(conf.vocabulary))
    from datasets import Dataset
    from transformers import TrainerCallback

    from thinking_summarizer.pipelines.demo_data.nodes import build_tiny_student
    from thinking_summarizer.pipelines.lora_training.nodes import prepare_base_model, trainer_settings
    from thinking_summarizer.schemas.params.tiny import TinyModels
    from thinking_summarizer.schemas.params.training import LoraTraining
    from thinking_summarizer.student.training import build_trainer

    train = Dataset.from_list([{"messages": e["messages"]} for e in pool[:n_train]])
    val_chat = Dataset.from_list([{"messages": e["messages"]} for e in val])
    lora = LoraTraining.model_validate(cfg | {"base_model": base_dir or str(tmp / f"base-{n_train}")})
    recipes = TinyModels(student=None if base_dir else tiny)
    started = time.perf_counter()
    base = prepare_base_model(build_tiny_student(train, recipes, lora.base_model), lora)
    built_s = time.perf_counter() - started
    settings = trainer_settings(lora, base) | {"eval_strategy": "no", "save_total_limit": None,
                                              "early_stopping_patience": None}
    built = build_trainer(train, val_chat, base["base_model"], lora.lora, settings, tmp / f"run-{n_train}",
                          lora.device)
    built.trainer.args.save_strategy = "no"
    built.trainer.args.load_best_model_at_end = False
    points: list[dict[str, Any]] = []
    samples = out.with_name(f"{out.stem}-{n_train}-samples.json")  # the latest probe's summaries, to read

    class Probe(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.on_epoch_end(args, state, control, **kwargs)  # the untrained student: step 0

        def on_epoch_end(self, args, state, control, **kwargs):
            epoch = round(state.epoch or 0)
            if epoch % every == 0 or epoch == round(args.num_train_epochs):
                for decoding in decodings:
                    card = {"instruction": instruction, "grammar": grammar if decoding == "grammar" else None}
                    texts = _summarize(kwargs["model"], built.tokenizer, card, val, max_new_tokens)
                    points.append({"train_examples": n_train, "decoding": decoding, "epoch": epoch,
                                   "step": state.global_step, "seconds": round(time.perf_counter() - started, 1),
                                   **score(texts, val)})
                    samples.with_name(f"{samples.stem}-{decoding}.json").write_text(json.dumps(
                        [{"thinking": e["thinking"], "teacher": e["markdown"], "student": t}
                         for e, t in zip(val, texts)], indent=1))
                    log.info("%d examples, epoch %d (step %d): %s", n_train, epoch, state.global_step, points[-1])

    built.trainer.add_callback(Probe())
    built.trainer.train()
    for point in points:
        point["base_build_s"] = round(built_s, 1)
    return points


def _apply(recipe: dict[str, Any], assignments: list[str]) -> None:
    for assignment in assignments:
        key, value = assignment.split("=", 1)
        *parents, leaf = key.split(".")
        node = recipe
        for part in parents:
            node = node[part]
        node[leaf] = json.loads(value) if value[:1] in "[{0123456789-tfn" else value


def write_table(points: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["train_examples", "decoding", "epoch", "step", "format_valid", "object_f1/truth", "primary_f1/truth",
               "object_f1/teacher", "key_point_rouge_l/teacher", "emotion_f1/teacher", "prompt_grounding",
               "objects/verbatim",
               "objects/novel", "key_points/verbatim", "emotion_indicators/novel", "seconds"]
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join("" if p.get(c) is None else str(p[c]) for c in columns) + " |" for p in points]
    out.write_text("\n".join(lines) + "\n")
    figure, axis = plt.subplots(figsize=(6, 4))
    for n, decoding in sorted({(p["train_examples"], p["decoding"]) for p in points}):
        series = [p for p in points if (p["train_examples"], p["decoding"]) == (n, decoding)]
        axis.plot([p["step"] for p in series], [p["object_f1/truth"] for p in series], marker="o",
                  linestyle="-" if decoding == "grammar" else "--", label=f"{n} examples, {decoding}")
    axis.set_xlabel("training step")
    axis.set_ylabel("object F1 vs truth (val)")
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(out.with_suffix(".png"), dpi=110)
    log.info("Table: %s; plot: %s", out, out.with_suffix(".png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, nargs="+", default=[56, 112, 224, 448])
    parser.add_argument("--val", type=int, default=64)
    parser.add_argument("--every", type=int, default=4, help="score the val split every this many epochs")
    parser.add_argument("--epochs", type=float, default=None, help="override the tiny recipe's epochs")
    parser.add_argument("--max-new-tokens", type=int, default=384)
    parser.add_argument("--recipe", type=Path, default=None, help="a YAML file merged over tiny_models.student")
    parser.add_argument("--set", action="append", default=[], help="tiny_models.student knob, e.g. pretrain.steps=0")
    parser.add_argument("--base", default=None, help="train this base model instead of building the tiny one")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "student_learning.md")
    parser.add_argument("--decoding", nargs="+", choices=["grammar", "free"], default=["grammar", "free"],
                        help="grammar: held to the format (as the project decodes); free: unconstrained")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("httpx", "transformers", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    out = args.out.resolve()
    conf = params()
    cfg, tiny = conf.lora_training.model_dump(), conf.tiny_models.student.model_dump()
    if args.recipe:
        tiny |= yaml.safe_load(args.recipe.read_text())
    _apply(tiny, args.set)
    if args.epochs is not None:
        tiny["trainer"]["num_train_epochs"] = args.epochs
    instruction = conf.dataset_build.instruction
    tmp = scratch()
    val = demo_examples(args.val, 0, instruction)
    pool = demo_examples(max(args.examples), 10_000, instruction)
    points = []
    for n in args.examples:
        points += run_size(n, pool, val, cfg, tiny, instruction, args.every, args.max_new_tokens, args.base, tmp, out,
                           args.decoding)
        write_table(points, out)


if __name__ == "__main__":
    main()
