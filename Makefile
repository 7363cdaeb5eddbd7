# The two commands a new user needs: `make demo` runs the pipeline on the embedded local stack,
# `make test` runs the tests. Both create the virtualenv on first use.

# The first interpreter that is one of the given versions: on PATH, or in pyenv's versions when its
# shim answers for another version.
find_python = $(shell for v in $(1); do \
	  for c in python$$v $$(pyenv root 2>/dev/null)/versions/$$v*/bin/python$$v; do \
	    $$c -c 'import sys; assert "%d.%d" % sys.version_info[:2] == "'$$v'"' 2>/dev/null && { echo $$c; exit 0; }; \
	  done; done)
# Development: the Lambda runtime's Python (3.13) first, else 3.12 or 3.11. PYTHON=... overrides.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(call find_python,3.13 3.12 3.11)
endif
VENV ?= .venv
BIN := $(VENV)/bin
export SAM_CLI_TELEMETRY = 0
STAMP := $(VENV)/.installed

.PHONY: demo test test-localstack lint up bench clean lock runtime-python

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || test -n "$(PYTHON)" || { \
	  echo "make: found none of python3.13, python3.12, python3.11 (on PATH or in pyenv)." \
	       "Install Python 3.13, the Lambda runtime's (3.11 and 3.12 also work for development)," \
	       "or name one: make PYTHON=/path/to/python3.13" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' aws-sam-cli
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/reimagine demo

up: $(STAMP)
	$(BIN)/reimagine local up

test: $(STAMP)
	$(BIN)/python -m pytest

# The integration suite on moto and on a running LocalStack (../shared/localstack/start, or
# `localstack start -d`; REIMAGINE_LOCALSTACK_URL if not http://127.0.0.1:4566).
test-localstack: $(STAMP)
	REIMAGINE_BACKENDS=moto,localstack $(BIN)/python -m pytest -m integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint --template template.yaml --region us-east-1

bench: $(STAMP)
	$(BIN)/python bench/cold_start.py
	$(BIN)/python bench/prepare_image.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam

# ---- Lambda artifacts: what `sam build` runs (Metadata BuildMethod: makefile on each function).
# `make build-ApiFunction ARTIFACTS_DIR=DIR` builds that function's package for Lambda (arm64,
# python3.13); PLATFORM=host builds it for this machine, so it can be imported and measured here.
# Each ships only its locked distributions (functions/requirements/<LogicalId>.txt), the reimagine
# package, and bytecode: /var/task is read-only, so without .pyc every cold start compiles every
# module. unchecked-hash .pyc are used as they are, whatever timestamps the zip gives the sources.
ROOT := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))
FUNCTIONS := ApiFunction CaptionFunction GenerateFunction NotifyFunction SweeperFunction MailEventsFunction
PLATFORM ?= lambda
LAMBDA_PIP := --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 \
	--python-version 3.13 --implementation cp --abi cp313
ifeq ($(PLATFORM),host)
PLATFORM_PIP :=
COMPILE_PREFIX :=
else ifeq ($(PLATFORM),lambda)
PLATFORM_PIP := $(LAMBDA_PIP)
# Tracebacks name the files where Lambda has them.
COMPILE_PREFIX = -s "$(ARTIFACTS_DIR)" -p /var/task
else
$(error PLATFORM is lambda (the default) or host, not $(PLATFORM))
endif
# The bytecode must be the runtime's: python3.13, whatever PLATFORM.
RUNTIME_PYTHON := $(call find_python,3.13)

.PHONY: $(addprefix build-,$(FUNCTIONS))
$(addprefix build-,$(FUNCTIONS)): build-%:
	@test -n "$(ARTIFACTS_DIR)" || { echo "make $@: set ARTIFACTS_DIR (sam build does)" >&2; exit 1; }
	@test -n "$(RUNTIME_PYTHON)" || { echo "make $@: needs python3.13 (the Lambda runtime's Python)" \
	  "on PATH or in pyenv, to install for and compile bytecode for that runtime" >&2; exit 1; }
	$(RUNTIME_PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --no-compile --upgrade \
	  --only-binary=:all: $(PLATFORM_PIP) --target "$(ARTIFACTS_DIR)" -r "$(ROOT)functions/requirements/$*.txt"
	rm -rf "$(ARTIFACTS_DIR)/bin" "$(ARTIFACTS_DIR)/reimagine"
	cp -R "$(ROOT)functions/reimagine" "$(ARTIFACTS_DIR)/reimagine"
	find "$(ARTIFACTS_DIR)/reimagine" -name __pycache__ -prune -exec rm -rf {} +
	$(RUNTIME_PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash $(COMPILE_PREFIX) "$(ARTIFACTS_DIR)"

# Re-resolve every function's lock after changing a functions/requirements/*.in (for Lambda's platform).
lock:
	@test -n "$(RUNTIME_PYTHON)" || { echo "make $@: needs python3.13" >&2; exit 1; }
	$(RUNTIME_PYTHON) $(ROOT)functions/requirements/lock.py --only-binary=:all: $(LAMBDA_PIP)

# The interpreter the artifacts are compiled for (what the artifact test and the benchmark run them with).
runtime-python:
	@test -n "$(RUNTIME_PYTHON)" && echo "$(RUNTIME_PYTHON)"
