/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/301ed97bfcf2e911/out/bench.d: src/bin/bench.rs

/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/301ed97bfcf2e911/out/bench: src/bin/bench.rs

src/bin/bench.rs:
