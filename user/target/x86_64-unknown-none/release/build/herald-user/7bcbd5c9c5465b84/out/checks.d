/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/7bcbd5c9c5465b84/out/checks.d: src/bin/checks.rs

/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/7bcbd5c9c5465b84/out/checks: src/bin/checks.rs

src/bin/checks.rs:
