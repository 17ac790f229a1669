"""An exact instruction profile of a Herald guest, by single-stepping it from gdb.

Inside gdb, attached to QEMU's gdb stub (`HERALD_QEMU_ARGS=-s cargo run --release`, then the
workload running):

    gdb -batch -ex 'target remote :1234' -ex 'source tools/profile/gdb-profile.py'

steps HERALD_PROFILE_STEPS instructions (default 200000; about 1000 a second), counting each
`rip`, and writes the counts to HERALD_PROFILE_OUT (default target/profile.counts). Then, on
the host:

    python3 tools/profile/gdb-profile.py target/profile.counts [kernel ELF]

prints the instructions per function, most first (user-space instructions as one line). The
kernel is linked at 0 and runs at 0xffff_8000_0000_0000. While gdb steps, QEMU masks
interrupts, so the profile follows the workload, not the timer.
"""
import bisect
import collections
import os
import subprocess
import sys

KERNEL_BASE = 0xFFFF_8000_0000_0000
USER_END = 0x0000_8000_0000_0000


def step_and_count():
    import gdb  # only inside gdb

    steps = int(os.environ.get("HERALD_PROFILE_STEPS", "200000"))
    out = os.environ.get("HERALD_PROFILE_OUT", "target/profile.counts")
    counts = collections.Counter()
    for _ in range(steps):
        counts[int(gdb.parse_and_eval("$pc")) & 0xFFFF_FFFF_FFFF_FFFF] += 1
        gdb.execute("stepi", to_string=True)
    with open(out, "w") as f:
        for pc, n in counts.items():
            f.write(f"{pc:x} {n}\n")
    print(f"{steps} instructions stepped, counts in {out}")


def report(counts_path, elf):
    symbols = []
    listing = subprocess.run(["nm", "-n", "-C", elf], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            symbols.append((int(parts[0], 16), parts[2]))
    starts = [start for start, _ in symbols]
    per_function = collections.Counter()
    total = 0
    for line in open(counts_path):
        pc, n = line.split()
        pc, n = int(pc, 16), int(n)
        total += n
        if pc < USER_END:
            per_function["<user space>"] += n
            continue
        index = bisect.bisect_right(starts, pc - KERNEL_BASE) - 1
        per_function[symbols[index][1] if index >= 0 else "?"] += n
    print(f"{total} instructions")
    for name, n in per_function.most_common(40):
        print(f"{100 * n / total:5.1f}% {n:9d} {name[:140]}")


if __name__ == "__main__":
    if "gdb" in sys.modules or len(sys.argv) < 2:
        step_and_count()
    else:
        report(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else
               "target/x86_64-unknown-none/release/herald")
