#!/usr/bin/env bash
# Cargo runner for the kernel target: `cargo run` and `cargo test` call this with the kernel ELF
# path. It builds (once) and runs tools/runner for the host, which boots the ELF in QEMU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec cargo run --quiet --manifest-path "$root/tools/Cargo.toml" --package herald-runner \
    --target host-tuple -- "$@"
