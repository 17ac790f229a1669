/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/a1ff6f7566fe1b68/out/intruder.d: src/bin/intruder.rs

/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/a1ff6f7566fe1b68/out/intruder: src/bin/intruder.rs

src/bin/intruder.rs:
