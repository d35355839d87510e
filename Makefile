# The two set-up commands (each does its own install into .venv on a fresh machine):
#   make demo   -- train the default GAN (experiments/mnist_mlp.py) into runs/mnist_mlp
#   make test   -- run the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test install
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: install
	$(VENV)/bin/jaxgan train

test: install
	$(PY) -m pytest -q
