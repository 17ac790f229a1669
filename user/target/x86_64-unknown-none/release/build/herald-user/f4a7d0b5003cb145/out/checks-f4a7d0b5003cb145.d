/work/main/user/target/x86_64-unknown-none/release/build/herald-user/f4a7d0b5003cb145/out/checks-f4a7d0b5003cb145.d: src/bin/checks.rs Cargo.toml

/work/main/user/target/x86_64-unknown-none/release/build/herald-user/f4a7d0b5003cb145/out/libchecks-f4a7d0b5003cb145.rmeta: src/bin/checks.rs Cargo.toml

src/bin/checks.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
