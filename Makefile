# The two commands of the README, and the pieces CI builds on.
#   make run    the site on http://127.0.0.1:8000 (SQLite, tasks in-process, demo data)
#   make test   the whole test suite (PostgreSQL when DATABASE_URL points at it)

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# Debian packages: a TrueType CJK font for the posters; chromium for the browser tests;
# nginx to check deploy/nginx.conf in front of gunicorn; logrotate to check
# deploy/logrotate.conf; wrk, B1's load generator.
APT_RUN := fonts-wqy-zenhei
APT_TEST := $(APT_RUN) chromium nginx logrotate
APT_BENCH := $(APT_RUN) wrk
PYTEST_ARGS ?=
BENCH_SCALE ?= small

.PHONY: run test lint bench check-deploy venv

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

# Install the Debian packages that are missing (as root), or say which to install.
define apt_ensure
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "Please install the Debian packages: sudo apt-get install $$missing"; exit 1; fi; \
	fi
endef

run: $(BIN)/.installed
	$(call apt_ensure,$(APT_RUN))
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_data
	$(BIN)/python manage.py runserver 127.0.0.1:8000

test: $(BIN)/.installed
	$(call apt_ensure,$(APT_TEST))
	$(BIN)/pytest $(PYTEST_ARGS)

# The benchmarks (docs/benchmarks.md): `make bench` is CI's smoke run, correctness only;
# BENCH_SCALE=full for the figures. Database: BENCH_DATABASE_URL, else postgres://…/lh_bench.
bench: $(BIN)/.installed
	$(call apt_ensure,$(APT_BENCH))
	$(BIN)/python -m bench.run --scale $(BENCH_SCALE)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
