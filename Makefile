# oicsr-lab: `make demo` runs the main job, `make test` the test suite; both set up .venv first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export OICSR_LAB_PROGRESS ?= 1

.PHONY: setup demo demo-full lint test test-slow test-browser test-all lab bench clean course

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# The main job: prune, fine-tune and report the shipped course-trained ResNet-20s on the embedded CIFAR-10 sample
# (no training; `oicsr-lab reproduce --preset quick` is the train-your-own version). SCOPE=auto runs the lite scope
# on a CPU without native bf16, where the full demo takes far over 5 minutes (docs/results.md 3); SCOPE=full or
# SCOPE=lite chooses.
SCOPE ?= auto
demo: $(STAMP)
	$(BIN)/oicsr-lab reproduce --preset demo --scope $(SCOPE) --out reports/demo

# The course-scale protocol on the same shipped networks: the full CIFAR-10 archive (OICSR_LAB_DATA or --data-dir must
# hold it), choices on the networks' own 5,000-image hold-out, the whole 10,000-image test split, one-shot pruning +
# 2 fine-tuning epochs on the other 45,000 at 30/50/70 % FLOPs, and the unpruned control. Hours on 2 CPU cores.
demo-full: $(STAMP)
	$(BIN)/oicsr-lab reproduce --preset demo --data cifar10 --finetune-ratios 0.3,0.5,0.7 --finetune-epochs 2 \
		--finetune-control --out reports/demo-full

# ruff over the package, tests, benchmarks and scripts (rules: [tool.ruff] in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .

# The linter, then the default test suite (notebooks included), one pytest-xdist worker per core (TEST_WORKERS=0:
# one process), each module in one worker so module fixtures are built once.
TEST_WORKERS ?= auto
test: lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadscope

# Slow checks: larger hypothesis profiles, long training, full-archive runs.
test-slow: $(STAMP)
	HYPOTHESIS_PROFILE=thorough $(BIN)/pytest -q -m "slow or archive_slow"

# Real-browser test: JupyterLab on loopback + Debian Chromium driven by Playwright.
test-browser: $(STAMP)  # OICSR_LAB_SAVE_SCREENSHOTS=1 also refreshes docs/img
	$(BIN)/pytest -q -m browser

test-all: test test-browser test-slow

# The course kit (docs/course.md): dist/course/student (no solutions, README, the wheel with data + models) and
# dist/course/instructor (solutions, nbgrader course directory). Grade: oicsr-lab course grade <folder> --csv grades.csv
course: $(STAMP)
	$(BIN)/oicsr-lab course release --out dist/course --wheel

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_regularizers.py
	$(BIN)/python benchmarks/bench_pruned_speed.py --quick
	$(BIN)/python benchmarks/bench_widgets.py
	$(BIN)/python benchmarks/bench_reproduce.py --preset ci --seeds 0

clean:
	rm -rf $(VENV) reports .pytest_cache
