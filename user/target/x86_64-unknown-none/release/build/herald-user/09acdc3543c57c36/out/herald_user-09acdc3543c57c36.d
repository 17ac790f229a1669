/work/main/user/target/x86_64-unknown-none/release/build/herald-user/09acdc3543c57c36/out/herald_user-09acdc3543c57c36.d: src/lib.rs src/../../src/abi.rs Cargo.toml

/work/main/user/target/x86_64-unknown-none/release/build/herald-user/09acdc3543c57c36/out/libherald_user-09acdc3543c57c36.rmeta: src/lib.rs src/../../src/abi.rs Cargo.toml

src/lib.rs:
src/../../src/abi.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
