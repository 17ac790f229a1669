/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/syscaller: /work/main/user/src/../../src/abi.rs /work/main/user/src/bin/syscaller.rs /work/main/user/src/lib.rs
