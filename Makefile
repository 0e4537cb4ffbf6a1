# Two commands for a new user:
#   make demo   set up, fetch ImageNet weights, train 5 folds on the demo dataset, open the dashboard
#   make test   set up and run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test setup weights train dashboard

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

setup: $(VENV)/.installed

weights: setup
	$(PY) train_cli.py weights

train: weights
	$(PY) train_cli.py --folds 5

dashboard: setup
	$(VENV)/bin/streamlit run dashboard/Home.py

demo: train dashboard

test: setup
	$(PY) -m pytest -q
