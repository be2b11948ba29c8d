# The two commands of the README: `make demo` and `make test`. Both set up .venv first if needed.
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup demo test

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/python demo.py

test: $(STAMP)
	$(VENV)/bin/python -m pytest
