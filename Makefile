# pressfleet: two commands on a fresh Debian 12 machine, as root.
#   make demo   set-up, then the main job (local Prefect stack, a lab host, the flows through their deployments)
#   make test   set-up, then the whole test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
STATE := .state
# Debian packages the product and its tests use (the lab and its forwarding guard (nftables), the control side's SSH, the UI test's browser,
# the PostgreSQL tier, the storage emulators' Node.js, site-code builds (composer, phpunit) and container images (podman)).
APT_PACKAGES := python3 python3-venv python3-dev gcc make git debootstrap systemd-container apt-cacher-ng \
	iproute2 util-linux openssh-client openssl zstd ca-certificates curl chromium postgresql pebble nftables \
	composer phpunit podman buildah runc
# The machine's own pip configuration (extra indexes, constraints) must not change what gets installed.
export PIP_CONFIG_FILE := /dev/null
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup apt node venv demo down test test-unit bench lock

help:
	@echo "make demo    set up, start the local Prefect stack and a lab host, run the main job"
	@echo "make test    set up, run every test"
	@echo "make test-unit  the fast tier alone (seconds)"
	@echo "make down    stop everything make demo started"
	@echo "make bench   speed figures into benchmarks/results/"

setup: apt venv node

apt:
	@missing=$$(dpkg-query -W -f='$${Package} $${Status}\n' $(APT_PACKAGES) 2>/dev/null | grep -v ' installed$$' | cut -d' ' -f1; \
	  for p in $(APT_PACKAGES); do dpkg-query -W $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing $$(echo $$missing | tr '\n' ' ')"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	fi
	@# kubectl kustomize builds the Kubernetes manifests: Debian's kubernetes-client, unless a kubectl is there
	@# already (another vendor's kubectl package would conflict with it).
	@command -v kubectl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends kubernetes-client
	@# A distro apt-cacher-ng service would listen on every address: the lab runs its own, bound to the lab bridge.
	@if [ -d /run/systemd/system ] && systemctl is-enabled -q apt-cacher-ng 2>/dev/null; then systemctl disable --now apt-cacher-ng; fi

# Node.js runs Azurite (the Azure Blob emulator the storage tests use). Debian's nodejs and npm unless the
# machine already has a Node.js with npm (a distro npm package would conflict with such an install).
node: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm)
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

venv: $(VENV)/.installed

# uv (pinned by hash in requirements-uv.lock) installs the project's lock in about 20 s where pip takes about 2 min;
# both check every hash.
$(VENV)/.installed: requirements.lock requirements-uv.lock pyproject.toml
	@test -x $(PY) || /usr/bin/python3 -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r requirements-uv.lock
	$(VENV)/bin/uv pip install -q --python $(PY) --require-hashes -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	@touch $@

demo: setup
	$(VENV)/bin/pressfleet demo

down:
	@test -x $(VENV)/bin/pressfleet && $(VENV)/bin/pressfleet down || true

# Every test runs: a skip (a missing tool, say) fails the run (tests/conftest.py). The suite uses its own lab
# namespace and a temporary state folder, so it leaves the demo's hosts and Prefect state alone.
test: setup
	PRESSFLEET_NO_SKIP=1 $(VENV)/bin/pytest

test-unit: venv
	$(VENV)/bin/pytest -m unit -q

# statsforecast and pmdarima (the forecast benchmark's comparison and a data set) need pandas < 3: their own venv,
# the pins of pyproject.toml's bench extra.
bench: setup
	@test -x $(STATE)/benchvenv/bin/python || /usr/bin/python3 -m venv $(STATE)/benchvenv
	$(VENV)/bin/uv pip install -q --python $(STATE)/benchvenv/bin/python statsforecast==2.1.1 pmdarima==2.1.1
	$(VENV)/bin/python -m benchmarks.run

# Regenerate requirements.lock after changing pyproject.toml (with Debian 12's own Python).
# Extras stay in the lock (httpx[http2]==...): Debian 12's pip 23.0 otherwise looks an extras requirement up on the
# index and, in --require-hashes mode, refuses it once a newer release than the pin exists.
lock:
	/usr/bin/python3 -m venv $(STATE)/piptools && $(STATE)/piptools/bin/pip install -q pip-tools
	$(STATE)/piptools/bin/pip-compile -q --generate-hashes --no-emit-index-url --no-emit-find-links \
	  --no-strip-extras --extra test --allow-unsafe -o requirements.lock pyproject.toml
