# Tawasul. `make run`: the whole system with demo data. `make test`: every test.
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Debian's Python, not one under /root: the service users must be able to run the venv.
PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)

.PHONY: run test bench install system clean

run: install
	$(BIN)/tawasul --demo up

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m benchmarks

# Debian packages, the virtual environment, the Asterisk runtime (cached machine-wide).
install: system $(STAMP)
	$(BIN)/tawasul asterisk install

system:
	@bash provisioning/install-system.sh

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

clean:
	rm -rf $(VENV) build *.egg-info
