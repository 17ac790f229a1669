/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/checks: /work/main/user/src/../../src/abi.rs /work/main/user/src/bin/checks.rs /work/main/user/src/lib.rs
