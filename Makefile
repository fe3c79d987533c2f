# Tawasul. `make run`: the whole system with demo data. `make test`: every test.
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TEST_STAMP := $(VENV)/.test-stamp
# Debian's Python, not one under /root: the service users must be able to run the venv.
PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)

.PHONY: run test bench install install-run system system-test clean

run: install-run
	$(BIN)/tawasul --demo up

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m benchmarks

# What running needs: Debian packages, the virtual environment, the Asterisk runtime (cached machine-wide).
install-run: system $(STAMP)
	$(BIN)/tawasul asterisk install

# Everything: also what the tests and benchmarks need (Debian packages, the test extras).
install: install-run system-test $(TEST_STAMP)

system:
	@bash provisioning/install-system.sh run

system-test:
	@bash provisioning/install-system.sh test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): setup.cfg setup.py pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

clean:
	rm -rf $(VENV) build *.egg-info
