/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/4a016faa8365f6e6/out/syscaller.d: src/bin/syscaller.rs

/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/4a016faa8365f6e6/out/syscaller: src/bin/syscaller.rs

src/bin/syscaller.rs:
