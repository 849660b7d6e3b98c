# streamworker — the README's commands. Every target installs what it needs first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
SW := $(VENV)/bin/streamworker
# Languages built by `make test` (all of them: the conformance suite covers each).
TEST_LANGUAGES ?=
PYTEST_ARGS ?=

.PHONY: help install up down status images demo-images image dind-image doctor bench demo test test-unit lint fmt

help:
	@echo "make demo   - install what is missing, start the stack, build images, run samples"
	@echo "make test   - start the stack and run lint, unit and integration tests"
	@echo "make up     - start Docker, Kafka (KRaft), PostgreSQL, one worker and the gateway"
	@echo "make status - show what runs;  make down - stop the local stack"
	@echo "make images - build every runtime image (missing or changed ones only)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# `dev/stack.sh up` writes .state/stack.env, which the CLI reads: no URLs repeated here.
up: install
	bash dev/stack.sh up
	$(SW) db upgrade
	bash dev/stack.sh up-worker
	bash dev/stack.sh up-gateway

down:
	bash dev/stack.sh down

status:
	bash dev/stack.sh status

images: install
	bash dev/stack.sh up-docker
	$(SW) images build $(TEST_LANGUAGES)

# Only the images the demo sends to; `make images` builds the rest.
demo-images: install
	bash dev/stack.sh up-docker
	$(SW) images build $$($(VENV)/bin/python dev/demo.py --languages)

demo: up demo-images
	$(VENV)/bin/python dev/demo.py

bench: up
	$(SW) bench --json docs/bench.json

doctor: install
	$(SW) doctor

dind-image: install
	$(VENV)/bin/python dev/dind/build.py

image: install
	bash dev/stack.sh up-docker
	bash dev/packaging/build-worker-image.sh

lint: install
	$(VENV)/bin/ruff check streamworker tests dev
	$(VENV)/bin/ruff format --check streamworker tests dev
	$(VENV)/bin/mypy

test-unit: install
	$(VENV)/bin/pytest -q tests/unit

# Lint, the stack and the tests that need no runtime image run while the images build.
test: install
	TEST_LANGUAGES="$(TEST_LANGUAGES)" PYTEST_ARGS="$(PYTEST_ARGS)" bash dev/test.sh

fmt: install
	$(VENV)/bin/ruff format streamworker tests dev
	$(VENV)/bin/ruff check --fix streamworker tests dev
