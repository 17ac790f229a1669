/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/keylog: /work/main/user/src/../../src/abi.rs /work/main/user/src/bin/keylog.rs /work/main/user/src/lib.rs
