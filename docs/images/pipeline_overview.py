"""Draw docs/images/pipeline.png: the project's pipelines and the datasets that connect them, read from the
pipeline registry (so the picture stays true). Needs Graphviz's `dot` (Debian: graphviz).

    .venv/bin/python docs/images/pipeline_overview.py
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from kedro.framework.project import configure_project, pipelines
from kedro.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
ORDER = ["demo_data", "data_sampling", "thinking_generation", "teacher_labeling", "dataset_build", "lora_training", "evaluation",
         "video_segmentation"]


def dot_source() -> str:
    configure_project("thinking_summarizer")
    found, earlier = {}, Pipeline([])
    for name in ORDER:  # each pipeline's own nodes (data_sampling is registered with demo_data's nodes too)
        found[name] = pipelines[name] - earlier
        earlier += pipelines[name]
    produced = {out: name for name, p in found.items() for out in p.all_outputs()}
    lines = ["digraph G {", 'rankdir=TB; nodesep=0.6; ranksep=0.55; fontname="Helvetica";',
             'node [shape=box, style="rounded,filled", fillcolor="#ffd54f", fontname="Helvetica", fontsize=16];',
             'edge [fontname="Helvetica", fontsize=11, color="#555555"];']
    for name, p in found.items():
        lines.append(f'"{name}" [label="{name}\\n({len(p.nodes)} nodes)"];')
    edges: dict[tuple[str, str], list[str]] = {}
    for name, p in found.items():
        for dataset in sorted(p.inputs()):
            source = produced.get(dataset)
            if source and source != name:
                edges.setdefault((source, name), []).append(dataset)
    for (source, target), datasets in edges.items():
        label = "\\n".join(datasets[:3] + ([f"+{len(datasets) - 3} more"] if len(datasets) > 3 else []))
        lines.append(f'"{source}" -> "{target}" [label="{label}"];')
    lines.append("}")
    return "\n".join(lines)


def main() -> None:
    target = ROOT / "docs" / "images" / "pipeline.png"
    subprocess.run(["dot", "-Tpng", "-Gdpi=110", "-o", str(target)], input=dot_source(), text=True, check=True)
    print(target)  # noqa: T201 - a command-line tool's one line of output


if __name__ == "__main__":
    main()
