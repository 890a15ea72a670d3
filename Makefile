# The two commands of the README:
#   make demo   set everything up, compile the shipped model for host/arm64/vulkan, run it
#               on the shipped input and print outputs, accuracy against PyTorch and speed
#   make test   set everything up and run the test suite (slow tests excluded)
.PHONY: setup demo test test-all lit bench clean

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/wispy demo

test: setup
	.venv/bin/python -m pytest -q

test-all: setup
	.venv/bin/python -m pytest -q -m ""

lit: setup
	.venv/bin/lit -v tests/passes

bench: setup
	.venv/bin/python benchmarks/dense_vs_peers.py

clean:
	rm -rf out build *.egg-info tests/passes/Output
