# The commands: `make run` (the whole system, locally), `make test` (the test suite) and `make bench` (the
# benchmarks; `make bench BENCH_ARGS=--smoke` for a short run). All install what they need first: Debian
# packages (only those missing) and a virtualenv in .venv.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := redis-server docker.io busybox-static iproute2 openssl
# Programs that tell whether the Debian packages above are installed.
APT_PROGRAMS := redis-server dockerd busybox ip openssl

.PHONY: run test bench deps apt venv clean

run: deps
	$(PY) scripts/run_local.py

test: deps
	$(PY) -m pytest

bench: deps
	$(PY) -m bench $(BENCH_ARGS)

deps: apt venv

apt:
	@missing=""; for p in $(APT_PROGRAMS); do command -v $$p >/dev/null 2>&1 || missing=yes; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $(APT_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@

clean:
	rm -rf $(VENV) .run .pytest_cache
