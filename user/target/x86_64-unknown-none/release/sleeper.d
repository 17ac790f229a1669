/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/sleeper: /work/main/user/src/../../src/abi.rs /work/main/user/src/bin/sleeper.rs /work/main/user/src/lib.rs
