/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/hello: /work/main/user/src/../../src/abi.rs /work/main/user/src/bin/hello.rs /work/main/user/src/lib.rs
