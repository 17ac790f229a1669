/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/db184c1c65b15402/out/fault.d: src/bin/fault.rs

/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/db184c1c65b15402/out/fault: src/bin/fault.rs

src/bin/fault.rs:
