VENV := .venv/bin

.PHONY: setup test test-unit test-vm lint guest-test mutate bench bench-pull bench-mounts bench-service bench-runtime bench-image bench-build example-image clean

setup:
	./setup.sh

# The whole suite: lint, the agent's C tests, unit tests, then tests that boot VMs.
test: lint guest-test
	$(VENV)/pytest -q tests

test-unit:
	$(VENV)/pytest -q tests/unit

test-vm:
	$(VENV)/pytest -q tests/integration

lint:
	$(VENV)/ruff check src tests bench
	$(VENV)/ruff format --check src tests bench

guest-test:
	$(MAKE) -s -C guest test

# Breaks one feature at a time in a copy of the tree and checks that its
# tests notice (slow: it boots VMs; not part of `make test`).
mutate:
	$(VENV)/python tests/mutate.py

# The start benchmark; README's performance table is rewritten from its JSON
# (kept as bench/results.json: a unit test checks the table still matches it).
# Bytecode first, as setup.sh leaves it: with PYTHONDONTWRITEBYTECODE set
# (as on these hosts) every run would otherwise compile cocoon from source.
bench:
	$(VENV)/python -m compileall -q src >/dev/null
	$(VENV)/python bench/start.py --density 40 --json bench/results.json
	$(VENV)/python bench/readme.py bench/results.json README.md

# Pull of a multi-layer image from a local docker-registry, against skopeo copy.
bench-pull:
	$(VENV)/python bench/pull.py

# Bind mount, volume, root disk and the host folder itself: throughput, stat, start cost.
bench-mounts:
	$(VENV)/python bench/mounts.py

# docker run --rm through `cocoon system service` against cocoon run --rm (ratio).
bench-service:
	$(VENV)/python bench/service.py

# podman run through cocoon-runtime vs runc vs cocoon run (README's runtime section).
bench-runtime:
	$(VENV)/python bench/runtime.py

bench-image:
	$(VENV)/python bench/image.py --baseline ea76ae0

bench-build:
	$(VENV)/python bench/build.py --json bench/build.json

# localhost/busybox:latest, a one-layer image made from Debian's busybox-static.
example-image:
	$(VENV)/python tests/oci.py busybox build/busybox-oci
	$(VENV)/cocoon image load build/busybox-oci

clean:
	rm -rf build guest/build
