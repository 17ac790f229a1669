/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/fuzz: /work/main/user/src/../../src/abi.rs /work/main/user/src/bin/fuzz.rs /work/main/user/src/lib.rs
