# The two entry points of the README: `make run` and `make test`. Both create the project-local
# virtual environment .venv on first use (pinned requirements; torch comes from this machine's
# wheel cache or PyPI) and reuse it afterwards.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp
HOST ?= 127.0.0.1
PORT ?= 7860
PROJECT ?= projects/demo

CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install run test clean browser

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) app.py --project $(PROJECT) --host $(HOST) --port $(PORT)

# The real-browser UI test drives Debian's Chromium with Playwright (no browser download).
# If Debian's package mirror cannot be reached the browser test is skipped (with its reason), not the suite.
browser:
	@test -x $(CHROMIUM) || $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	  || ($(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "warning: could not install chromium; the real-browser test will be skipped"

test: install browser
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
