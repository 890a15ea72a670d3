# The two commands of the README:
#   make demo   set everything up, compile the shipped model for host/arm64/vulkan, run it
#               on the shipped input and print outputs, accuracy against PyTorch and speed
#   make test   set everything up and run the test suite (slow tests excluded)
.PHONY: setup demo test test-all lit bench accuracy clean

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

# The dense accuracy table (docs/results/accuracy.md, data in docs/results/data): trains the
# small models; ~30 min on an idle 2-core machine, ~90 min on a busy one.
accuracy: setup
	nice -n 10 .venv/bin/wispy accuracy --out out/accuracy --docs docs/results/data $(if $(wildcard out/gru_small/last.pt),--reuse gru-small=out/gru_small)

clean:
	rm -rf out build *.egg-info tests/passes/Output
