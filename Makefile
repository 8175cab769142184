# One task runner for developers and CI. Every target runs as root on Linux.

CARGO ?= cargo
TEST_IMAGES ?= target/test-images

.PHONY: all build release test test-deps test-images lint fmt example bench

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# Debian packages, kubectl and the Python client the tests need; a no-op when all are there.
test-deps:
	scripts/install-test-deps.sh

# Test images are built from Debian's busybox-static, without any registry.
test-images:
	python3 scripts/make-test-images.py $(TEST_IMAGES)

# The whole suite: unit tests and end-to-end tests on real containers (needs root).
test: test-deps test-images
	CORACLE_TEST_IMAGES=$(abspath $(TEST_IMAGES)) $(CARGO) test --workspace -- --test-threads=4

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

example:
	scripts/run-example.sh
