"""One GPU benchmark command: full-size random-weight models of the real shapes (speed does not depend on the
weights), run through the project's own student, trainer, segmenter and thinker code; one table of figure vs
target, and the same as JSON.

    python benchmarks/gpu_suite.py                      # on one GPU: the real shapes (about 6 minutes on an H100)
    python benchmarks/gpu_suite.py --parts student,sam3 # some of it
    python benchmarks/gpu_suite.py --smoke              # tiny shapes on a CPU: checks the suite itself (CI)

Imports only torch, transformers, peft, trl, datasets, av, opencv and the project's adapters (no kedro, no
mlflow), so it runs on a bare GPU box with the project's `src/` on the path.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from thinking_summarizer.io.media import VideoWriter  # noqa: E402
from thinking_summarizer.runtime.torch_runtime import peak_memory_mb, reset_peak_memory  # noqa: E402

log = logging.getLogger("gpu_suite")
PARTS = ("student", "training", "sam3", "thinker")
SHAPES = {  # the real models' shapes; --smoke shrinks each to a few layers
    "student": {"hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36, "num_attention_heads": 16,
                "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
                "tie_word_embeddings": True},
    "thinker": {"text": {"hidden_size": 3584, "layers": 28, "heads": 28, "kv_heads": 4, "intermediate_size": 18944},
                "vision": {"depth": 32, "hidden_size": 1280, "heads": 16, "intermediate_size": 3420,
                           "full_attention_blocks": [7, 15, 23, 31]},
                "audio": {"d_model": 1280, "layers": 32, "heads": 20, "ffn_dim": 5120, "num_mel_bins": 128,
                          "chunk_seconds": 30}},
}
SMOKE = {
    "student": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "vocab_size": 2000, "max_position_embeddings": 2048},
    "thinker": {"text": {"hidden_size": 64, "layers": 2, "heads": 4, "kv_heads": 2},
                "vision": {"depth": 1, "hidden_size": 32, "heads": 4},
                "audio": {"d_model": 32, "layers": 1, "heads": 4, "num_mel_bins": 16, "chunk_seconds": 10}},
}
TARGETS = {"student summaries/s": ">= 50", "LoRA 3 epochs x 2,240 samples": "< 5 min", "SAM3 frames/s": ">= 25",
           "SAM3 state 4x / 1x length": "1.0 (flat)", "thinker 3,000 samples": "< 15 min"}


def conf(name: str):
    """conf/base's section `name`, typed as a run hands it to nodes."""
    from thinking_summarizer.schemas.params import RunParams

    merged = {key: value for file in sorted((ROOT / "conf" / "base").glob("parameters*.yml"))
              for key, value in yaml.safe_load(file.read_text()).items()}
    return getattr(RunParams.model_validate(merged), name)


def words(n: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    vocab = ("the woman in a red coat on the left smiles while the man opposite frowns his voice is sharp and "
             "her eyes are wide so the answer is surprised because the table in the middle holds a white cup").split()
    return " ".join(rng.choice(vocab, n))


class Suite:
    def __init__(self, smoke: bool, device: torch.device, scratch: Path):
        self.smoke, self.device, self.scratch = smoke, device, scratch
        self.dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        self.rows: list[dict[str, Any]] = []

    def row(self, what: str, figure: str, target: str = "", **numbers: Any) -> None:
        self.rows.append({"what": what, "figure": figure, "target": target, **numbers})
        log.info("%s: %s", what, figure)

    def tokenizer(self):
        from thinking_summarizer.tiny_models import CHAT_SPECIALS, train_tokenizer
        from thinking_summarizer.tiny_models.student import CHAT_TEMPLATE

        return train_tokenizer([words(400, i) for i in range(50)], 1000, CHAT_SPECIALS, CHAT_TEMPLATE)

    def student_model(self, tokenizer):
        from transformers import Qwen2Config, Qwen2ForCausalLM

        shape = (SMOKE if self.smoke else SHAPES)["student"]
        config = Qwen2Config(**shape, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        with torch.device(self.device):
            return Qwen2ForCausalLM(config).to(self.dtype)

    # --- the student: summaries/s through Student.summarize --------------------------------------------------

    def student(self) -> None:
        from thinking_summarizer.student import Inference, Student

        tokenizer = self.tokenizer()
        student = Student(self.student_model(tokenizer), tokenizer, {"instruction": "Summarise the reasoning."})
        new_tokens = 16 if self.smoke else 200
        student.model.generation_config.min_new_tokens = new_tokens  # every summary as long as the design's
        thinkings = [words(230, i) for i in range(256)]  # about 300 prompt tokens each
        sizes = [1, 4] if self.smoke else [1, 16, 64, 128]
        runs = [("dynamic", size) for size in sizes] + [("static", sizes[-1])]
        best = 0.0
        for cache, size in runs:
            student.inference = Inference(cache_implementation=cache)
            count = size if size > 1 else 2
            if cache == "static":  # the first call at a shape compiles the decode step
                started = time.perf_counter()
                student.summarize(thinkings[:count], size, new_tokens)
                self.row(f"student static-cache warm-up, batch {size}", f"{time.perf_counter() - started:.1f} s")
            reset_peak_memory(self.device)
            started = time.perf_counter()
            out = student.summarize(thinkings[:count], size, new_tokens)
            rate = count / (time.perf_counter() - started)
            best = max(best, rate)
            self.row(f"student summaries/s, {cache} cache, batch {size}", f"{rate:.2f}", TARGETS["student summaries/s"],
                     tokens_per_s=round(sum(out.new_tokens) / (time.perf_counter() - started), 1),
                     peak_mb=round(peak_memory_mb(self.device)))
        if self.device.type == "cuda":
            student.inference = Inference(cache_implementation="static", memory_fraction=0.5)
            self.row("student batch size from free memory (0.5 of it)",
                     str(student.batch_size(8, 300, new_tokens)))
        self.row("student best summaries/s", f"{best:.2f}", TARGETS["student summaries/s"])

    # --- LoRA training through the project's SFTConfig recipe ------------------------------------------------

    def training(self) -> None:
        from datasets import Dataset
        from peft import LoraConfig
        from transformers import TrainerCallback
        from trl import SFTTrainer

        from thinking_summarizer.student.training import fit_to_length, sft_config

        cfg = conf("lora_training")
        settings = cfg.trainer.model_dump() | {"num_train_epochs": 1, "logging_steps": 1, "eval_strategy": "no",
                                           "save_total_limit": 1}
        steps = 2 if self.smoke else 10
        batch = settings["per_device_train_batch_size"] * settings["gradient_accumulation_steps"]
        tokenizer = self.tokenizer()
        chats = [[{"role": "system", "content": "Summarise the reasoning."},
                  {"role": "user", "content": words(300, i)},
                  {"role": "assistant", "content": words(60, i + 10_000)}] for i in range(steps * batch)]
        fitted = fit_to_length(chats, tokenizer, settings["max_length"])
        args = sft_config(settings, self.scratch / "train", self.device.type == "cuda")
        args.save_strategy, args.load_best_model_at_end, args.max_steps = "no", False, steps
        lora = cfg.lora
        trainer = SFTTrainer(
            model=self.student_model(tokenizer), args=args, processing_class=tokenizer,
            train_dataset=Dataset.from_dict({"messages": fitted.messages}),
            peft_config=LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                   target_modules=lora.target_modules, task_type="CAUSAL_LM"))
        marks: list[float] = []

        class Clock(TrainerCallback):
            def on_step_end(self, *args, **kwargs):
                marks.append(time.perf_counter())

        trainer.add_callback(Clock())
        reset_peak_memory(self.device)
        trainer.train()
        per_step = (marks[-1] - marks[1]) / max(1, len(marks) - 2) if len(marks) > 2 else marks[-1] - marks[0]
        projected = 3 * 2240 / batch * per_step / 60
        self.row(f"LoRA s/step ({batch} examples, padding_free={args.padding_free}, liger={args.use_liger_kernel})",
                 f"{per_step:.2f}", peak_mb=round(peak_memory_mb(self.device)))
        self.row("LoRA 3 epochs x 2,240 samples", f"{projected:.1f} min", TARGETS["LoRA 3 epochs x 2,240 samples"])

    # --- SAM3 through the project's segmenter -----------------------------------------------------------------

    def sam3_model(self) -> Path:
        from transformers import Sam3VideoConfig, Sam3VideoModel, Sam3VideoProcessor
        from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor
        from transformers.models.sam3.image_processing_sam3 import Sam3ImageProcessor

        from thinking_summarizer.tiny_models.sam3 import _prompt_tokenizer, build_tiny_sam3

        path = self.scratch / "sam3"
        recipe = conf("tiny_models").sam3
        if self.smoke:
            build_tiny_sam3(path, recipe, recipe.prompt_texts)
            return path
        # the 848M checkpoint's shape at 1008 px; random scores sit near 0.245, so a threshold of 0.27 leaves
        # each prompt a handful of detections, as real prompts have
        thresholds = {"score_threshold_detection": 0.27, "new_det_thresh": 0.27, "max_num_objects": 4}
        with torch.device(self.device):
            model = Sam3VideoModel(Sam3VideoConfig(**thresholds))
        model.tracker_model.mask_decoder.pred_obj_score_head.proj_out.bias.data.fill_(recipe.object_score_bias)
        model.save_pretrained(path)
        Sam3VideoProcessor(image_processor=Sam3ImageProcessor(), video_processor=Sam2VideoVideoProcessor(),
                           tokenizer=_prompt_tokenizer(recipe.prompt_texts, recipe.vocab_size),
                           target_size=1008).save_pretrained(path)
        return path

    def video(self, frames: int, width: int, height: int) -> Path:
        path = self.scratch / f"video-{frames}-{width}.mp4"
        with VideoWriter(path, 24, width, height) as writer:
            for t in range(frames):
                frame = np.full((height, width, 3), 40, np.uint8)
                x = (t * 5) % (width - width // 4)
                frame[height // 4: height // 2, x: x + width // 5] = (200, 40, 40)
                frame[height // 2:, width // 2:] = (230, 230, 230)
                writer.write(frame)
        return path

    def sam3(self) -> None:
        from thinking_summarizer.segmentation.sam3 import Sam3Segmenter

        base = conf("video_segmentation").sam3.model_copy(update={"model": str(self.sam3_model()),
                                                                  "device": self.device.type, "dtype": "auto"})
        width, height = (160, 120) if self.smoke else (640, 480)
        short, prompts = (8, 4) if self.smoke else (48, 4)
        names = ["person", "red sofa", "white cup", "man in a coat"][:prompts]
        video = self.video(short, width, height)
        reduced = 112 if self.smoke else 560
        for batched, every, size in ((False, 1, None), (True, 1, None), (True, 3, None), (True, 1, reduced)):
            segmenter = Sam3Segmenter(base.model_copy(update={"batched_prompts": batched, "detect_every": every,
                                                              "image_size": size}))
            segmenter.track(str(video), names, lambda *a: None)  # warm-up
            result = segmenter.track(str(video), names, lambda *a: None)
            fps = result.frames / max(result.seconds_model, 1e-9)
            self.row(f"SAM3 frames/s, {prompts} prompts, batched={batched}, detect every {every}, "
                     f"{size or 'full'} px", f"{fps:.2f}", TARGETS["SAM3 frames/s"], objects=len(result.prompt_of))
        segmenter = Sam3Segmenter(base.model_copy(update={"batched_prompts": True}))
        states = {}
        for length in (short, 4 * short):
            reset_peak_memory(self.device)
            result = segmenter.track(str(self.video(length, width, height)), names, lambda *a: None)
            states[length] = max(result.state_bytes) / 2**20
            self.row(f"SAM3 {length} frames: session state / process peak", f"{states[length]:.1f} MB / "
                     f"{peak_memory_mb(self.device):.0f} MB")
        self.row("SAM3 state 4x / 1x length", f"{states[4 * short] / states[short]:.3f}",
                 TARGETS["SAM3 state 4x / 1x length"])

    # --- HumanOmniV2's thinker through the project's generator -------------------------------------------------

    def thinker(self) -> None:
        from thinking_summarizer.generators.omni_transformers import OmniTransformersGenerator
        from thinking_summarizer.schemas.params.thinking import VideoSampling
        from thinking_summarizer.schemas.params.tiny import TinyThinker
        from thinking_summarizer.tiny_models.omni import build_tiny_omni

        cfg = conf("thinking_generation")
        shape = (SMOKE if self.smoke else SHAPES)["thinker"]
        recipe = TinyThinker.model_validate(conf("tiny_models").thinker.model_dump() | shape | {"vocab_size": 1200})
        path = self.scratch / "thinker"
        path.mkdir()
        with torch.device(self.device):  # built where it runs: seconds, not minutes, for 7B random weights
            build_tiny_omni(path, recipe, [words(300, i) for i in range(50)])
        video = VideoSampling(fps=2.0, max_frames=32, min_pixels=3136, max_pixels=448 * 448)
        transformers_cfg = cfg.transformers.model_copy(update={
            "model": str(path), "video": video, "batch_size": 2 if self.smoke else 8, "device": self.device.type})
        generation = cfg.generation.model_copy(update={"max_new_tokens": 16 if self.smoke else 512})
        generator = OmniTransformersGenerator(transformers_cfg, cfg.prompt, generation)
        generator.model.generation_config.min_new_tokens = generation.max_new_tokens
        clip = self.video(2 * 24 * 16 if not self.smoke else 48, 640 if not self.smoke else 160,
                          480 if not self.smoke else 120)  # 16 s at 24 fps: 32 frames at 2 fps
        samples = [{"sample_id": f"s{i}", "video_path": str(clip), "question": "How does she feel?",
                    "options": ["A. Happy", "B. Sad"], "problem_type": "multiple choice"}
                   for i in range(transformers_cfg.batch_size)]
        generator.generate(samples[:1])  # warm-up
        reset_peak_memory(self.device)
        started = time.perf_counter()
        results = generator.generate(samples)
        rate = len(samples) / (time.perf_counter() - started)
        assert not any(r.error for r in results), [r.error for r in results if r.error][:1]
        self.row(f"thinker samples/s, batch {len(samples)}, 32 frames at 448 px + audio, "
                 f"{generation.max_new_tokens} new tokens", f"{rate:.3f}", peak_mb=round(peak_memory_mb(self.device)))
        self.row("thinker 3,000 samples", f"{3000 / rate / 60:.1f} min", TARGETS["thinker 3,000 samples"])

    def table(self) -> str:
        lines = ["| what | figure | target |", "| --- | --- | --- |"]
        lines += [f"| {r['what']} | {r['figure']} | {r['target']} |" for r in self.rows]
        return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes (on a CPU too): checks the suite runs")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        raise SystemExit("no CUDA device: the full-size suite needs a GPU (--smoke runs tiny shapes on a CPU)")
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    with tempfile.TemporaryDirectory() as scratch:
        suite = Suite(args.smoke, device, Path(scratch))
        for part in args.parts.split(","):
            started = time.perf_counter()
            getattr(suite, part)()
            log.info("%s done in %.0f s", part, time.perf_counter() - started)
    table = f"Device: {card}; torch {torch.__version__}\n\n{suite.table()}"
    sys.stdout.write(table + "\n")
    if args.out:
        args.out.write_text(json.dumps({"device": card, "rows": suite.rows}, indent=1))


if __name__ == "__main__":
    main()
