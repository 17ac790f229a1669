/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/intruder: /work/main/user/src/../../src/abi.rs /work/main/user/src/bin/intruder.rs /work/main/user/src/lib.rs
