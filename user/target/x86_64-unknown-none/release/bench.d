/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/bench: /work/main/user/src/../../src/abi.rs /work/main/user/src/bin/bench.rs /work/main/user/src/lib.rs
