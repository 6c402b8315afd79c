# Oasis build entry points. Every target installs what it needs first (scripts/setup.sh).
#   make run    the main job on its built-in default
#   make test   the whole test suite (what CI runs)
#   make bench  the benchmark harness; writes bench/out/ and prints the figures
export PATH := /opt/swift/usr/bin:$(PATH)

SWIFT_BUILD_FLAGS ?=
BIN = .build/debug

.PHONY: setup build release run test test-unit lint fuzz bench clean

setup:
	@bash scripts/setup.sh

build: setup
	swift build $(SWIFT_BUILD_FLAGS)

release: setup
	swift build -c release $(SWIFT_BUILD_FLAGS)

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

clean:
	rm -rf .build bench/.build bench/out
