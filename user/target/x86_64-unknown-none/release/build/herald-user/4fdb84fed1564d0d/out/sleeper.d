/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/4fdb84fed1564d0d/out/sleeper.d: src/bin/sleeper.rs

/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/4fdb84fed1564d0d/out/sleeper: src/bin/sleeper.rs

src/bin/sleeper.rs:
