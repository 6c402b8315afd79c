#!/usr/bin/env bash
# Fails when the sources are not `swift format` clean or the build prints a warning.
set -euo pipefail
cd "$(dirname "$0")/.."
swift format lint --strict -r Package.swift Sources Tests bench/Sources Fuzz
