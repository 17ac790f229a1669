/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/668045df47606106/out/fuzz.d: src/bin/fuzz.rs

/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/668045df47606106/out/fuzz: src/bin/fuzz.rs

src/bin/fuzz.rs:
