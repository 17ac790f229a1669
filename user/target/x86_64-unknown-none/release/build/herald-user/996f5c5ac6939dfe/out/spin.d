/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/996f5c5ac6939dfe/out/spin.d: src/bin/spin.rs

/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/996f5c5ac6939dfe/out/spin: src/bin/spin.rs

src/bin/spin.rs:
