# ecvi-logs: `make run` for the demo, `make test` for the whole suite against real services.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
export ECVI_CACHE_DIR ?= $(HOME)/.cache/ecvi-logs

.PHONY: run test unit lint services reliability bench clean venv

$(BIN)/ecvi-logs: pyproject.toml logging_config/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e './logging_config[fluent,celery,sentry,metrics]' -e '.[test]'
	touch $@

venv: $(BIN)/ecvi-logs

## run: the demo backend logging through logging_config, shipped into ./var/out (Ctrl-C stops)
run: venv
	$(BIN)/ecvi-logs demo --workdir ./var

## services: build Loki, Prometheus, kube-apiserver + etcd and the validators (promtool, amtool, kubeconform,
## kustomize, helm) from their Go modules and fetch Elasticsearch, all cached in $(ECVI_CACHE_DIR), before any test runs
services: venv
	bash tests/services/build_loki.sh >/dev/null
	bash tests/services/fetch_elasticsearch.sh >/dev/null
	PATH="$(CURDIR)/$(BIN):$$PATH" bash tests/tools/build_all.sh >/dev/null

## test: unit + integration (real Loki, Elasticsearch, moto) + the short reliability profile
test: venv services
	$(BIN)/pytest -p no:cacheprovider tests

unit: venv
	$(BIN)/pytest -p no:cacheprovider -m "not integration and not reliability" tests

## lint: ruff and mypy
lint: venv
	$(BIN)/ruff check logging_config shipper pipelines tests bench
	$(BIN)/mypy logging_config shipper pipelines

## reliability: the long reliability profile (crash, outage, rotation storm, soak)
reliability: venv services
	ECVI_RELIABILITY_PROFILE=long $(BIN)/pytest -p no:cacheprovider -m reliability -s tests

## bench: throughput and overhead benchmarks (numbers go to docs/benchmarks.md)
bench: venv
	$(BIN)/python bench/shipper_throughput.py
	$(BIN)/python bench/logging_overhead.py
	$(BIN)/python bench/metrics_overhead.py

clean:
	rm -rf var build *.egg-info
