# The two set-up commands (each does its own install into .venv on a fresh machine):
#   make demo   -- train the default GAN (experiments/mnist_mlp.py) into runs/mnist_mlp
#   make test   -- run the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test install constraints
install: $(VENV)/.installed

# the tested versions of every package (constraints.txt); pyproject.toml keeps the ranges
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $@

# rewrite constraints.txt from .venv (after an upgrade that passed `make test`)
constraints:
	{ grep '^#' constraints.txt; $(VENV)/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

demo: install
	$(VENV)/bin/jaxgan train

test: install
	$(PY) -m pytest -q
