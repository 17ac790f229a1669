/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/fault: /work/main/user/src/../../src/abi.rs /work/main/user/src/bin/fault.rs /work/main/user/src/lib.rs
