/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/f1c53d06ad1dc9f6/out/keylog.d: src/bin/keylog.rs

/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/f1c53d06ad1dc9f6/out/keylog: src/bin/keylog.rs

src/bin/keylog.rs:
