/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/4cf3a22742a16692/out/herald_user-4cf3a22742a16692.d: src/lib.rs src/../../src/abi.rs

/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/4cf3a22742a16692/out/libherald_user-4cf3a22742a16692.rlib: src/lib.rs src/../../src/abi.rs

/work/main/tools/runner/../../user/target/x86_64-unknown-none/release/build/herald-user/4cf3a22742a16692/out/libherald_user-4cf3a22742a16692.rmeta: src/lib.rs src/../../src/abi.rs

src/lib.rs:
src/../../src/abi.rs:
