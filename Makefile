# Two commands matter: `make demo` and `make test`. Everything else is what they call.
# Set-up is incremental: a step re-runs only when the files it depends on change.

VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# The CDK CLI and jsii must not phone home or prompt during tests and demos.
export CDK_DISABLE_VERSION_CHECK := 1
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1

.PHONY: setup models demo test lint typecheck unit clean bench bench-record pricing soak serve fuzz snapshots

setup: $(STAMP) $(NODE_STAMP)

# pip runs quietly, so each step says what it does and, on a first run, how long it takes
# (measured from an empty pip cache on a 2-core x86_64 machine: pip 88 s, npm ci 1 s).
$(STAMP): requirements.txt requirements-dev.txt tools/node_shims.py
	@test -x $(PY) || { echo "creating $(VENV) with $$(tools/find_python.sh)"; "$$(tools/find_python.sh)" -m venv $(VENV); }
	@echo "installing Python packages into $(VENV) (about 1.5 minutes and 1.5 GB on a first run; seconds after)"
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) tools/node_shims.py
	@touch $@
	@echo "Python packages installed"

$(NODE_STAMP): package.json package-lock.json $(STAMP)
	@echo "installing the pinned CDK CLI into node_modules (npm ci, a few seconds)"
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Reference model versions are committed; this verifies their checksums and trains
# only a version that is missing.
models: $(STAMP)
	@echo "verifying the committed model versions (training any that is missing)"
	$(PY) -m training.reference

demo: setup models
	@$(PY) -m tools.demo

# The real handler behind a local Function URL-shaped server on http://127.0.0.1:8080/.
# Options: make serve SERVE_ARGS="--version v1 --port 9000"
serve: setup models
	$(PY) -m tools.serve $(SERVE_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

unit: setup models
	$(PY) -m pytest

test: lint typecheck unit

# Benchmarks print figures; they are not part of `make test` (timings are not assertions).
# `make bench` writes build/bench/ only; `make bench-record` keeps that run in
# benchmarks/results/ and docs/performance.md. Options: BENCH_ARGS="--cpu 0 --rounds 7".
# Then explanations against shap (benchmarks/explain.py): EXPLAIN_BENCH_ARGS="--cpu 0".
bench: setup models
	$(PY) -m benchmarks.run $(BENCH_ARGS)
	$(PY) -m benchmarks.frame_pipeline $(BENCH_ARGS)
	$(PY) -m benchmarks.explain $(EXPLAIN_BENCH_ARGS)
	$(PY) -m benchmarks.batch $(BATCH_BENCH_ARGS)

bench-record: $(STAMP)
	$(PY) -m benchmarks.record

# Monthly cost of each environment as cdk.json configures it (prices: benchmarks/pricing.py).
pricing: $(STAMP)
	$(PY) -m benchmarks.pricing

soak: setup models
	$(PY) -m benchmarks.soak

# The property tests with many more random inputs than `make test` runs (hypothesis
# profile "long"), plus the fault and reload tests; prints how many inputs were tried, per
# fuzzer: the handler's, and those of schema files, training CSVs, capture exports and the
# local server (tests/reliability/test_fuzz_*.py; docs/reliability.md has their counts).
# Then the fuzz properties of the other suites (tests named or marked "fuzz"), if any:
# pytest's "no tests collected" (status 5) is not a failure there.
fuzz: setup models
	HYPOTHESIS_PROFILE=long $(PY) -m pytest tests/reliability -p no:cacheprovider
	HYPOTHESIS_PROFILE=long $(PY) -m pytest tests/training tests/analysis tests/handler \
		-p no:cacheprovider -k fuzz; status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]

# Update the template snapshots on purpose, after a deliberate infrastructure change;
# review the diff of tests/infra/__snapshots__ before committing it.
snapshots: setup models
	$(PY) -m pytest tests/infra --snapshot-update

# Everything the targets create: the set-up, the CLI's output, the benchmarks' wheel cache
# (build/), hypothesis' example database and the tools' caches. Committed files stay.
clean:
	rm -rf $(VENV) node_modules cdk.out build .hypothesis .pytest_cache .mypy_cache .ruff_cache
	rm -f benchmarks/results/*.tmp
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
