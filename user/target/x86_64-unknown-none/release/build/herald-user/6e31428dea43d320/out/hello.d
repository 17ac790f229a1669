/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/6e31428dea43d320/out/hello.d: src/bin/hello.rs

/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/6e31428dea43d320/out/hello: src/bin/hello.rs

src/bin/hello.rs:
