/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/spin: /work/main/user/src/../../src/abi.rs /work/main/user/src/bin/spin.rs /work/main/user/src/lib.rs
