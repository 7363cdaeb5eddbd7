# The two commands a new user needs: `make demo` runs the pipeline on the embedded local stack,
# `make test` runs the tests. Both create the virtualenv on first use.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export SAM_CLI_TELEMETRY = 0
STAMP := $(VENV)/.installed

.PHONY: demo test test-localstack lint up bench clean

$(STAMP): pyproject.toml
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
