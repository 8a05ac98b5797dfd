# drainctl: every target sets up what it needs first (venv, Debian packages, npm packages).
# Quickstart: `make demo` and `make test`.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JS_DIR := tests/e2e/js
STACK ?= staging

# command -> Debian package the tests and the demo use (a path glob where the command is not on PATH)
DEBIAN_PACKAGES := haproxy:haproxy prometheus:prometheus nft:nftables ss:iproute2 ip:iproute2 node:nodejs npm:npm shellcheck:shellcheck tmux:tmux \
  systemd-analyze:systemd promtool:prometheus \
  /usr/lib/postgresql/*/bin/initdb:postgresql \
  curl:curl nsenter:util-linux setpriv:util-linux unshare:util-linux /usr/lib/python3*/ensurepip/__init__.py:python3-venv
# (the last line: what the box's VMs run, docs/box.md: Debian's own python3 with ensurepip, curl, namespaces)

.PHONY: setup system-deps venv js-deps test lint demo plan bench clean dist lock box

setup: system-deps venv

system-deps:
	@missing=""; for pair in $(DEBIAN_PACKAGES); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  { command -v $$cmd || ls $$cmd; } >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ -n "$${missing// /}" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "drainctl: missing Debian packages. Run as root: apt-get update && apt-get install -y $$missing" >&2; exit 1; \
	  fi; \
	  echo "installing Debian packages:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null \
	    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; }; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,infra,kubernetes,gcp,demo,azure,postgres]'
	@touch $(STAMP)

js-deps: $(JS_DIR)/node_modules/.installed

$(JS_DIR)/node_modules/.installed: $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: setup js-deps lint dist
	$(VENV)/bin/pytest

demo: setup
	$(VENV)/bin/drainctl demo

# The staging stack booted from its rendered scripts on this machine (docs/box.md); root; `make test` runs it too.
box: setup dist
	$(VENV)/bin/pytest -q tests/box

plan: venv dist
	@$(PY) -m infra.plan $(STACK)

# The wheel and the wheelhouse the stack uploads and every VM installs from, offline (infra/dist.py); a second
# run with unchanged sources and locks does nothing. `make lock` re-resolves deploy/*.lock (after a dependency change).
dist: venv
	@$(PY) -m infra.dist

lock: venv
	$(PY) -m infra.dist lock

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(JS_DIR)/node_modules .pytest_cache .mypy_cache .ruff_cache dist
