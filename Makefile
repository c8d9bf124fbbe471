# aksrun: `make demo` runs the quickstart on the local backend; `make test` runs every test
# that needs no Azure (real-AKS integration tests report as skipped without its variables).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST := $(PY) -m pytest
STAMP  := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp

.PHONY: help venv demo test test-unit test-local test-cluster test-integration lint workflow-check \
        bench clean k8s cluster-up cluster-down system-tools images kubernetes-floor stdlib-tests

help:  ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "aksrun needs Python >= 3.11"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

venv: $(STAMP)  ## Create .venv and install aksrun with its test tools

demo: $(STAMP)  ## Run examples/quickstart.py on the local backend
	AKSRUN_BACKEND=local $(PY) examples/quickstart.py

# The lowest `kubernetes` client pyproject allows, beside the venv's newest: a test signs in
# with an Entra token through it (its API differs: issue 11, item 1).
K8S_FLOOR := $(shell sed -n 's/.*"kubernetes>=\([0-9.]*\)".*/\1/p' pyproject.toml)
K8S_FLOOR_DIR := .cache/kubernetes-floor
$(K8S_FLOOR_DIR)/.stamp-$(K8S_FLOOR): pyproject.toml $(STAMP)
	rm -rf $(K8S_FLOOR_DIR) && $(PY) -m pip install --quiet --target $(K8S_FLOOR_DIR) "kubernetes==$(K8S_FLOOR).*"
	touch $@

kubernetes-floor: $(K8S_FLOOR_DIR)/.stamp-$(K8S_FLOOR)  ## The lowest allowed kubernetes client, for its test

test: $(STAMP) $(NODE_STAMP) lint workflow-check k8s images kubernetes-floor stdlib-tests  ## Every test that needs no Azure
	$(PYTEST) tests

test-unit: $(STAMP)  ## Unit tests only (no Azure, no emulator)
	$(PYTEST) tests/unit

test-local: $(STAMP)  ## End-to-end tests on the local backend only
	$(PYTEST) tests/e2e -k "local and not blob"

test-cluster: $(STAMP) $(NODE_STAMP) k8s images  ## The cluster tier only (real control plane + node agent)
	$(PYTEST) tests/cluster

k8s: $(STAMP)  ## Build the Kubernetes control plane from its Go modules (first time ~5-10 min, cached)
	$(PY) -m tests.support.k8s build

cluster-up: $(STAMP) $(NODE_STAMP) k8s images  ## Start a local test cluster (real control plane) and print its exports
	@$(PY) -m tests.support.k8s up

cluster-down: $(STAMP)  ## Stop what cluster-up started
	@$(PY) -m tests.support.k8s down

# Image builds without Docker: buildah (rootless builds need root here: CI runs as root),
# debootstrap (the test base image: Docker Hub and MCR can't be reached) and the CNCF
# distribution registry. Installed from Debian's packages when missing.
IMAGE_TOOLS := buildah debootstrap docker-registry
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

system-tools:  ## Debian packages the image tests need (buildah, debootstrap, docker-registry)
	@missing=""; for tool in $(IMAGE_TOOLS); do \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (Debian packages)"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q --no-install-recommends $(IMAGE_TOOLS); \
	fi

# CPython's own executor tests, run against aksrun.Executor (tests/e2e/test_stdlib_executor_suite.py)
STDLIB_TESTS := /usr/lib/python3.11/test/test_concurrent_futures.py
stdlib-tests:  ## Debian's libpython3.11-testsuite: the standard library's test suite
	@if [ ! -f $(STDLIB_TESTS) ]; then \
	  echo "installing libpython3.11-testsuite (Debian package)"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q --no-install-recommends libpython3.11-testsuite; \
	fi

images: $(STAMP) system-tools  ## Wheels and the base image the image tests build from (first time ~3 min, cached)
	$(PY) -m tests.support.images prepare

test-integration: $(STAMP)  ## Real-AKS integration tests (needs .env or AZURE_* variables)
	$(PYTEST) -m integration tests/integration $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff
	$(VENV)/bin/ruff check .

workflow-check: $(STAMP)  ## Validate the GitHub Actions workflow offline
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

bench: $(STAMP) $(NODE_STAMP)  ## Benchmarks (tables of ratios against their baselines)
	$(PY) benchmarks/local.py
	$(PY) benchmarks/storage.py --size 256MiB
	$(PY) benchmarks/control_plane.py
	$(PY) benchmarks/images.py

clean:  ## Remove the environment and caches
	rm -rf $(VENV) node_modules .ruff_cache build *.egg-info .cache
