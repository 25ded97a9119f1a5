VENV := .venv/bin

.PHONY: setup test test-unit test-vm lint guest-test bench bench-pull bench-image example-image clean

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

bench:
	$(VENV)/python bench/start.py

# Pull of a multi-layer image from a local docker-registry, against skopeo copy.
bench-pull:
	$(VENV)/python bench/pull.py

bench-image:
	$(VENV)/python bench/image.py --baseline ea76ae0

# localhost/busybox:latest, a one-layer image made from Debian's busybox-static.
example-image:
	$(VENV)/python tests/oci.py busybox build/busybox-oci
	$(VENV)/cocoon image load build/busybox-oci

clean:
	rm -rf build guest/build
