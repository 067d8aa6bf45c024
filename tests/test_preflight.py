"""`kedro run --env gpu` on a machine that cannot reach the hub (or has no GPU) fails at once, naming each
missing model, before any node runs."""

import copy
import time

from thinking_summarizer.schemas.params import RunParams
from thinking_summarizer.schemas.params.tiny import TinyModels

from .conftest import BASE_PARAMETERS, documented_kedro_command, kedro_cli


def test_env_gpu_without_hub_or_cuda_names_every_missing_model_in_seconds(project):
    started = time.monotonic()
    result = kedro_cli(project, *documented_kedro_command("--env gpu"))
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert elapsed < 60, f"took {elapsed:.0f} s"
    for key, model in (("thinking_generation.transformers.model", "PhilipC/HumanOmniV2"),
                       ("lora_training.base_model", "Qwen/Qwen2.5-3B-Instruct"),
                       ("video_segmentation.sam3.model", "facebook/sam3")):
        assert f"{key} = '{model}': not a local folder, not in the Hugging Face cache" in output, key
    assert "preflight.require_cuda" in output
    assert not (project / "data/01_raw/demo").exists()  # no node ran
    # one message, no traceback; --verbose shows where it was raised
    assert "Traceback" not in output and "Error: Preflight: this run cannot load what it needs" in result.stderr
    verbose = kedro_cli(project, "run", "--env", "gpu", "--verbose")
    assert verbose.returncode != 0 and "Traceback" in verbose.stdout + verbose.stderr


def test_a_partial_run_checks_only_the_models_its_nodes_load(project):
    result = kedro_cli(project, "run", "--env", "gpu", "--pipelines", "lora_training")
    output = result.stdout + result.stderr
    assert "lora_training.base_model = 'Qwen/Qwen2.5-3B-Instruct'" in output
    assert "PhilipC/HumanOmniV2" not in output and "facebook/sam3" not in output


def test_every_name_conf_and_the_run_summary_give_is_a_real_dataset():
    """Couplings by name that nothing else checks: a renamed model dataset would silently lose its model check
    (each is built in the run and read by the nodes that load the model); every dataset the catalog marks for the
    run summary is one the pipelines make."""
    import yaml
    from kedro.framework.project import configure_project, pipelines

    from .conftest import REPO

    configure_project("thinking_summarizer")
    default = pipelines["__default__"]
    rules = yaml.safe_load((REPO / "conf/base/parameters.yml").read_text())["preflight"]["models"]
    read = {name for node in default.nodes for name in node.inputs}
    assert set(rules) <= read & default.all_outputs(), set(rules) - (read & default.all_outputs())
    catalog = yaml.safe_load((REPO / "conf/base/catalog.yml").read_text())
    marked = {name for name, entry in catalog.items() if "run_summary" in entry.get("metadata", {})}
    assert len(marked) == 12 and marked <= default.all_outputs(), marked - default.all_outputs()


def test_every_registered_backend_resolves_and_an_unknown_one_names_its_key():
    """The one table of backends (`backends.REGISTRY`) is what the parameter check and the builders read: each
    entry must import, and a name it lacks stops the run with the key and the choices."""
    import importlib

    import pytest

    from thinking_summarizer.backends import REGISTRY, create
    from thinking_summarizer.errors import ConfigurationError
    from thinking_summarizer.schemas import parameter_errors

    for key, entries in REGISTRY.items():
        for name, path in entries.items():
            module, _, attribute = path.partition(":")
            factory = importlib.import_module(module)
            for part in attribute.split("."):
                factory = getattr(factory, part)
            assert callable(factory), (key, name)
    with pytest.raises(ConfigurationError, match=r"teacher_labeling.backend: unknown backend 'gpt' \(one of "
                                                 r"extractive, openai, openai_batch\)"):
        create("teacher_labeling.backend", "gpt", {}, {}, {}, None)
    params = copy.deepcopy(BASE_PARAMETERS)
    params["thinking_generation"]["backend"] = "vllm"
    assert parameter_errors(params) == (
        None, ["thinking_generation.backend: unknown backend 'vllm' (one of openai, reference, transformers)"])


def test_a_run_that_loads_a_tiny_model_it_does_not_build_is_stopped_with_the_way_to_build_it(project):
    """The adapters never build a model: a fresh project's thinking_generation with the in-process thinker (whose
    tiny one demo_data builds) stops before any node, naming the key and the pipeline that builds it; a run with
    demo_data builds it itself, so it passes the check."""
    import pytest

    from thinking_summarizer.errors import PreflightError
    from thinking_summarizer.runtime import preflight

    from .conftest import run_session

    with pytest.raises(PreflightError, match=r"thinking_generation.transformers.model = 'data/06_models/tiny/humanomni'"
                                             r".* built from tiny_models.thinker by the demo_data pipeline"):
        run_session(project, ["thinking_generation"], {"thinking_generation": {"backend": "transformers"}})
    assert not (project / "data/06_models/tiny").exists()
    params = load_params(project, {"thinking_generation": {"backend": "transformers"}})
    builds = {"tiny_thinker", "tiny_sam3"}
    assert preflight.problems(params, {"tiny_thinker"}, builds, params.preflight) == []
    no_recipes = params.model_copy(update={"tiny_models": TinyModels()})
    assert preflight.problems(no_recipes, {"tiny_thinker"}, builds, params.preflight)


def load_params(project, runtime: dict) -> RunParams:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=runtime) as session:
        return RunParams.model_validate(session.load_context().config_loader["parameters"])
