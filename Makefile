# The two commands: `make run` (the whole system, locally) and `make test` (the test suite).
# Both install what they need first: Debian packages (only those missing) and a virtualenv in .venv.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := redis-server docker.io busybox-static iproute2 openssl
# Programs that tell whether the Debian packages above are installed.
APT_PROGRAMS := redis-server dockerd busybox ip openssl

.PHONY: run test deps apt venv clean

run: deps
	$(PY) scripts/run_local.py

test: deps
	$(PY) -m pytest

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
	$(PY) -m pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .run .pytest_cache
