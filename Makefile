# IoMT-AD — every entry point a newcomer needs. `make setup` is idempotent and fast when nothing changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export IOMT_AD_CACHE ?= $(HOME)/.cache/iomt-ad
PIP_STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)
PYTEST_ARGS ?=

.PHONY: setup venv jars services test test-fast demo clean help

help:
	@echo "make setup   - virtual environment (.venv with iomt-ad), jars and test services, cached under $(IOMT_AD_CACHE)"
	@echo "make demo    - run the main job on the embedded default (Spark local mode, no broker)"
	@echo "make test    - set up, then run the whole test suite (Spark, Kafka, InfluxDB included)"
	@echo "make test-fast - only the tests that need no service"
	@echo "make train / evaluate - rebuild the default model bundle / its held-out report"
	@echo "make bench [bench-quick] - benchmarks: bench.json and BENCHMARKS.md"

setup: venv jars services

venv: $(PIP_STAMP)

$(PIP_STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

jars:
	conf/jars/fetch_jars.sh "$(IOMT_AD_CACHE)"

services:
	tests/services/install_services.sh "$(IOMT_AD_CACHE)"

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/python -m pytest -m "not spark and not kafka and not influxdb and not objectstore" $(PYTEST_ARGS)

demo: venv jars  # the demo needs neither the Kafka broker nor InfluxDB the tests use
	$(BIN)/iomt-ad demo --conf conf/local.yaml

clean:
	rm -rf var/ spark-warehouse/ metastore_db/ .pytest_cache/

# The default bundle: trained on ../shared/data/ciciomt2024 when present, else on the project's sample.
TRAIN_DATA ?= $(firstword $(wildcard ../shared/data/ciciomt2024) data/ciciomt2024-sample)
MODEL ?= models/v3

.PHONY: train evaluate bench bench-quick grafana dist
dist: venv
	$(BIN)/iomt-ad dist --model $(MODEL) --out dist

grafana: venv
	$(BIN)/iomt-ad grafana --model $(MODEL)

bench: setup
	$(BIN)/iomt-ad bench

bench-quick: setup
	$(BIN)/iomt-ad bench --quick

train: venv
	$(BIN)/iomt-ad train --data $(TRAIN_DATA) --out $(MODEL) --window-invariant
	$(MAKE) evaluate

evaluate: venv
	$(BIN)/iomt-ad evaluate --model $(MODEL) --data $(TRAIN_DATA) --json $(MODEL)/evaluation.json --html $(MODEL)/evaluation.html
	$(BIN)/python -m models.training.evidence --model $(MODEL) --data $(TRAIN_DATA) --json $(MODEL)/evidence.json  # why the targets are missed
	$(BIN)/iomt-ad grafana --model $(MODEL)  # dashboards carry the bundle's thresholds
