#!/usr/bin/env bash
# Cargo runner for the kernel target: `cargo run` and `cargo test` call this with the kernel ELF
# path. It builds (once) and runs tools/runner for the host, which boots the ELF in QEMU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
quiet=(--quiet)
if ! compgen -G "$root/tools/target/*/debug/herald-runner" > /dev/null; then
    # The first build compiles the bootloader's BIOS and UEFI stages: minutes, not seconds.
    echo "herald: first run: building the runner and the bootloader's boot stages" \
        "(2-3 minutes, once; later runs start at once)" >&2
    quiet=()
fi
exec cargo run "${quiet[@]}" --manifest-path "$root/tools/Cargo.toml" --package herald-runner \
    --target host-tuple -- "$@"
