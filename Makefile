# The two commands a new user needs: `make demo` runs the pipeline on the embedded local stack,
# `make test` runs the tests. Both create the virtualenv on first use: `make demo` (and `make up`)
# install the product, the operator tools and the local stack (`pip install -e '.[local]'`);
# everything else (`make test`, `make lint`, `make bench`, CI) installs the developer tools too
# (`pip install -e '.[dev]'`: test, lint, SAM CLI, browser).

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
# Everything (the developer tools too), and the package with the local stack only (`[local]`).
STAMP := $(VENV)/.installed
LOCAL_STAMP := $(VENV)/.installed-local

.PHONY: demo test test-localstack lint up bench clean lock runtime-python venv teardown

venv:
	@test -x $(BIN)/python || test -n "$(PYTHON)" || { \
	  echo "make: found none of python3.13, python3.12, python3.11 (on PATH or in pyenv)." \
	       "Install Python 3.13, the Lambda runtime's (3.11 and 3.12 also work for development)," \
	       "or name one: make PYTHON=/path/to/python3.13" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)

# --no-compile: Python compiles what the demo imports when it first imports it, not every module of
# botocore and moto up front (most of the install's time on a small machine).
$(LOCAL_STAMP): pyproject.toml
	@$(MAKE) --no-print-directory venv
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -e '.[local]'
	@touch $(LOCAL_STAMP)

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory venv
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP) $(LOCAL_STAMP)

demo: $(LOCAL_STAMP)
	$(BIN)/reimagine demo

up: $(LOCAL_STAMP)
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

# Tear a deployed stack down: empty its two buckets (CloudFormation deletes only empty buckets; they
# are unversioned, so this removes every object), then `sam delete`. STACK=reimagine-prod for prod.
# The table goes too (DynamoDB keeps a 35-day backup of it; docs/operations.md#teardown).
STACK ?= reimagine
SAM ?= $(if $(wildcard $(BIN)/sam),$(BIN)/sam,sam)
teardown:
	@for output in UploadsBucketName ResultsBucketName; do \
	  bucket=$$(aws cloudformation describe-stacks --stack-name "$(STACK)" \
	    --query "Stacks[0].Outputs[?OutputKey=='$$output'].OutputValue" --output text) || exit 1; \
	  test -z "$$bucket" || test "$$bucket" = None || aws s3 rm "s3://$$bucket" --recursive --quiet || exit 1; \
	done
	$(SAM) delete --stack-name "$(STACK)" --no-prompts

# ---- Lambda artifacts: what `sam build` runs (Metadata BuildMethod: makefile on each function).
# `make build-ApiFunction ARTIFACTS_DIR=DIR` builds that function's package for Lambda (arm64,
# python3.13); PLATFORM=host builds it for this machine, so it can be imported and measured here.
# Each ships only its locked distributions (functions/requirements/<LogicalId>.txt), the reimagine
# package, and bytecode: /var/task is read-only, so without .pyc every cold start compiles every
# module. unchecked-hash .pyc are used as they are, whatever timestamps the zip gives the sources.
# The locked distributions are installed (and compiled) once per lock file's content and platform,
# into $(MAKE_DEPS), and copied from there while the lock is unchanged: a second `sam build`
# reinstalls nothing. `sam build` runs this in the repository (samconfig build_in_source), so the
# copies persist between builds; the package itself is copied and compiled every time.
ROOT := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))
FUNCTIONS := ApiFunction CaptionFunction GenerateFunction NotifyFunction SweeperFunction MailEventsFunction
PLATFORM ?= lambda
MAKE_DEPS ?= $(ROOT).aws-sam/make-deps
LAMBDA_PIP := --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 \
	--python-version 3.13 --implementation cp --abi cp313
ifeq ($(PLATFORM),host)
PLATFORM_PIP :=
COMPILE_PREFIX :=
DEPS_PREFIX = $(abspath $(ARTIFACTS_DIR))
else ifeq ($(PLATFORM),lambda)
PLATFORM_PIP := $(LAMBDA_PIP)
# Tracebacks name the files where Lambda has them.
COMPILE_PREFIX = -s "$(ARTIFACTS_DIR)" -p /var/task
DEPS_PREFIX := /var/task
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
	@lock="$(ROOT)functions/requirements/$*.txt"; \
	deps="$(MAKE_DEPS)/$*-$(PLATFORM)-$$($(RUNTIME_PYTHON) -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read() + sys.argv[2].encode()).hexdigest()[:16])' "$$lock" "$(DEPS_PREFIX)")"; \
	if [ -d "$$deps" ]; then echo "build-$*: $$lock unchanged, its distributions are already installed"; else \
	  echo "build-$*: installing $$lock"; \
	  rm -rf "$(MAKE_DEPS)/$*-$(PLATFORM)-"* && \
	  $(RUNTIME_PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --no-compile \
	    --only-binary=:all: $(PLATFORM_PIP) --target "$$deps.tmp" -r "$$lock" && \
	  rm -rf "$$deps.tmp/bin" && \
	  $(RUNTIME_PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash -s "$$deps.tmp" -p "$(DEPS_PREFIX)" "$$deps.tmp" && \
	  mv "$$deps.tmp" "$$deps" || exit 1; \
	fi; \
	mkdir -p "$(ARTIFACTS_DIR)" && rm -rf "$(ARTIFACTS_DIR)/reimagine" && cp -R "$$deps/." "$(ARTIFACTS_DIR)/"
	cp -R "$(ROOT)functions/reimagine" "$(ARTIFACTS_DIR)/reimagine"
	find "$(ARTIFACTS_DIR)/reimagine" -name __pycache__ -prune -exec rm -rf {} +
	$(RUNTIME_PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash $(COMPILE_PREFIX) "$(ARTIFACTS_DIR)/reimagine"

# Re-resolve every function's lock after changing a functions/requirements/*.in (for Lambda's platform).
lock:
	@test -n "$(RUNTIME_PYTHON)" || { echo "make $@: needs python3.13" >&2; exit 1; }
	$(RUNTIME_PYTHON) $(ROOT)functions/requirements/lock.py --only-binary=:all: $(LAMBDA_PIP)

# The interpreter the artifacts are compiled for (what the artifact test and the benchmark run them with).
runtime-python:
	@test -n "$(RUNTIME_PYTHON)" && echo "$(RUNTIME_PYTHON)"
