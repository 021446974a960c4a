# The commands: `make run` (the whole system, locally), `make test` (the test suite) and `make bench` (the
# benchmarks; `make bench BENCH_ARGS=--smoke` for a short run). All install what they need first: Debian
# packages (only those missing) and a virtualenv in .venv. `make compose` runs the system as containers on
# the local Docker engine instead.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Every pip install takes its versions from the constraints file, build dependencies included.
CONSTRAINTS := $(CURDIR)/constraints.txt
PIP_INSTALL := PIP_CONSTRAINT=$(CONSTRAINTS) $(PY) -m pip install -q
# The optional dependencies .venv has, and so what constraints.txt covers.
EXTRAS := test,dashboard,bench
# Debian's python3 (with venv) resolves constraints.txt, and scripts/images.py makes the images' wheels with
# it: it is the Python of the images' Debian base, so environment markers come out as they will there.
DEBIAN_PYTHON := /usr/bin/python3
APT_PACKAGES := redis-server redis-sentinel docker.io busybox-static iproute2 openssl debootstrap docker-compose chromium python3-venv

.PHONY: run test bench deps apt venv lock images compose compose-down clean

run: deps
	$(PY) scripts/run_local.py

# Two workers (pytest-xdist), each with its own dockerd, Redis and Eureka; a test file stays on one worker.
test: deps
	$(PY) -m pytest -n 2 --dist loadfile

bench: deps
	$(PY) -m bench $(BENCH_ARGS)

deps: apt venv

apt:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e '.[$(EXTRAS)]'
	touch $@

# Resolve pyproject.toml's dependencies afresh (newest allowed versions) and write them to constraints.txt.
lock: apt
	rm -rf build/lock-venv
	$(DEBIAN_PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install -q --upgrade setuptools
	build/lock-venv/bin/pip install -q -e '.[$(EXTRAS)]'
	{ echo "# The exact versions of every install (make run, make test, make bench, the images): pip takes them from"; \
	  echo "# here as constraints (PIP_CONSTRAINT). Made by \`make lock\` from pyproject.toml with Debian's Python 3.11 (the"; \
	  echo "# images' Python); re-run it after changing a dependency."; \
	  build/lock-venv/bin/pip freeze --all --exclude-editable | grep -v '^pip=='; } > constraints.txt
	rm -rf build/lock-venv

# The images, built on the Docker engine of DOCKER_HOST (default: the local one) without a registry.
images: deps
	$(PY) scripts/images.py

compose: images
	docker-compose up -d
	@echo "  Eureka:     http://127.0.0.1:$${EUREKA_PORT:-8761}/eureka/apps"
	@echo "  Dashboard:  http://127.0.0.1:$${DASHBOARD_PORT:-9181}/"
	@echo "  Redis:      redis://127.0.0.1:$${REDIS_PORT:-6379}/0"
	@echo "  Stop with:  make compose-down   (docker-compose down -v also deletes Redis's data)"

compose-down:
	docker-compose down

clean:
	rm -rf $(VENV) .run .pytest_cache build .artifacts
