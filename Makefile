# Two commands on a fresh machine with Python 3.11 and pip:
#   make run    install into .venv, then run the whole study on the built-in synthetic cohort
#   make test   install into .venv, then run the test suite
# Everything installs into the project-local virtual environment .venv.

PYTHON ?= python3
VENV   ?= .venv
CORES  ?= 2
# pytest-xdist workers for `make test`: the SLURM run and the end-to-end run mostly wait (status polls, a killed
# and resumed workflow), so they run in workers of their own beside the CPU-bound tests (tests/conftest.py)
TEST_WORKERS ?= 3
BIN    := $(VENV)/bin

# PyTorch is chosen explicitly, never by accident: TORCH=cpu (default; what CI and laptops want) or
# TORCH=cuda (the registry's default Linux wheel, CUDA build, several GB). Where no local CPU wheel is
# configured for pip, point TORCH_INDEX at PyTorch's CPU wheel index (see docs/install.md).
TORCH       ?= cpu
TORCH_VER   ?= 2.13.0
TORCH_INDEX ?=
ifeq ($(TORCH),cpu)
TORCH_SPEC := torch==$(TORCH_VER)$(if $(TORCH_INDEX),+cpu,)
else
TORCH_SPEC := torch==$(TORCH_VER)
endif
TORCH_ARGS := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)

.PHONY: setup run test dry-run report clean mlflow-ui constraints

setup: $(VENV)/.installed

# constraints.txt pins every other package to the versions the tests ran with (a lock file; `make constraints`
# rewrites it from .venv after a deliberate upgrade).
$(VENV)/.installed: pyproject.toml Makefile constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet $(TORCH_ARGS) "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -c "import torch, radiomics, mlflow, snakemake; print('installed: torch', torch.__version__, '| cuda', torch.cuda.is_available())"
	touch $@

run: setup
	$(BIN)/snakemake --cores $(CORES) --rerun-incomplete

dry-run: setup
	$(BIN)/snakemake -n --cores $(CORES)

test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///results/mlflow/mlflow.db --host 127.0.0.1 --port 5000

constraints: setup
	{ sed -n '1,3p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v -i -E '^(#|torch==|nvidia-|triton==)'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf results logs .snakemake
