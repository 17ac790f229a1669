/work/main/user/target/x86_64-unknown-none/release/build/herald-user/79d043bc3fbe64bb/out/fuzz-79d043bc3fbe64bb.d: src/bin/fuzz.rs Cargo.toml

/work/main/user/target/x86_64-unknown-none/release/build/herald-user/79d043bc3fbe64bb/out/libfuzz-79d043bc3fbe64bb.rmeta: src/bin/fuzz.rs Cargo.toml

src/bin/fuzz.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
