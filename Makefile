# The two commands: `make run` (the demo on http://127.0.0.1:8000) and `make test`.
# Each target creates .venv and installs the project on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NPM    ?= npm
# The console's NHS.UK assets, copied out of the npm package (never committed).
NHSUK_SRC := node_modules/nhsuk-frontend/dist/nhsuk
NHSUK_DST := exchange/api/console/static/nhsuk
ASSETS    := $(NHSUK_DST)/.built
CHROMIUM  ?= /usr/bin/chromium

.PHONY: run test test-slow lint bench install assets nhsuk-assets browser clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	@touch $@

install: $(STAMP)

# nhsuk-frontend (the console's CSS/JS) and axe-core (injected by the browser tests), at the
# versions package-lock.json pins. The CSS's @font-face rules are dropped (the Frutiger
# fonts are licensed and served from an external host: Arial stands in) and its image URLs
# made relative to where the CSS is served.
$(ASSETS): package.json package-lock.json
	@if ! command -v $(NPM) >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q npm; \
		else echo "note: npm is missing (sudo apt-get install npm): the console will be unstyled" >&2; exit 0; fi; \
	fi; \
	$(MAKE) --no-print-directory nhsuk-assets

nhsuk-assets:
	$(NPM) ci --no-audit --no-fund --loglevel=error
	rm -rf $(NHSUK_DST)
	mkdir -p $(NHSUK_DST)
	sed -E 's/@font-face\{[^}]*\}//g; s#url\(/assets/#url(assets/#g' \
		$(NHSUK_SRC)/nhsuk-frontend.min.css > $(NHSUK_DST)/nhsuk-frontend.min.css
	sed -E '/^\/\/# sourceMappingURL=/d; s#//\# sourceMappingURL=[^ ]*$$##' \
		$(NHSUK_SRC)/nhsuk-frontend.min.js > $(NHSUK_DST)/nhsuk-frontend.min.js
	cp -R $(NHSUK_SRC)/assets $(NHSUK_DST)/assets
	@touch $(ASSETS)

assets: $(ASSETS)

# The browser tests drive Debian's Chromium (Playwright never downloads a browser). As root
# (CI) it is installed when missing; otherwise say how (the tests skip outside CI, and fail
# in CI, without it).
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
		else echo "note: $(CHROMIUM) is missing: install it (sudo apt-get install chromium) for the console's browser tests" >&2; fi; \
	fi

run: $(STAMP) $(ASSETS)
	$(BIN)/exchange demo --serve --host 127.0.0.1 --port 8000

test: $(STAMP) $(ASSETS) browser
	$(BIN)/python -m pytest -n auto -m "not slow"

# pytest exits 5 when no test is marked slow: that is not a failure.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow || [ $$? -eq 5 ]

lint: $(STAMP)
	$(BIN)/ruff check exchange tests migrations bench
	$(BIN)/ruff format --check exchange tests migrations bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache node_modules $(NHSUK_DST) test-artefacts
