# Oasis build entry points. Every target installs what it needs first (scripts/setup.sh).
#   make run    the main job on its built-in default
#   make test   the whole test suite (what CI runs)
#   make bench  the benchmark harness; writes bench/out/ and prints the figures
#   make xen-test  real Xen 4.17 under QEMU: the Oasis netfront against real netback
#               (xen/harness/run.sh; packages cached in /var/cache/oasis-xen)
export PATH := /opt/swift/usr/bin:$(PATH)

SWIFT_BUILD_FLAGS ?=
BIN = .build/debug

.PHONY: setup build release run test test-unit lint fuzz bench xen-test clean

setup:
	@bash scripts/setup.sh

build: setup
	swift build $(SWIFT_BUILD_FLAGS)

release: setup
	swift build -c release --product oasis $(SWIFT_BUILD_FLAGS)

run: release
	bash scripts/run-default.sh .build/release/oasis

lint:
	@bash scripts/lint.sh

test: build
	bash scripts/test.sh

fuzz: setup
	bash scripts/fuzz.sh

bench: setup
	bash bench/run.sh

xen-test:
	bash xen/harness/run.sh

clean:
	rm -rf .build .build-xen bench/.build bench/out xen/out
