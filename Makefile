# Two commands do everything: `make reproduce` (the main job) and `make test`.
# Each runs the idempotent set-up first (R from Debian, .venv with the pinned stack).
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/default.yaml
OUT ?= study

.PHONY: setup test reproduce shortcuts schemas clean

setup:
	@bash scripts/setup.sh

test: setup
	$(PY) -m pytest -q

reproduce: setup
	$(VENV)/bin/gvr reproduce --config $(CONFIG) --out $(OUT)

# The main job plus the shortcut benchmark (about 45 more minutes on 2 cores), for "Beyond the paper".
shortcuts: setup
	$(VENV)/bin/gvr reproduce --config $(CONFIG) --out $(OUT) --shortcuts

# Regenerate the committed Frictionless Table Schemas after editing data_schema/tables.py.
schemas: setup
	$(VENV)/bin/gvr schema export

clean:
	rm -rf $(VENV) .pytest_cache
