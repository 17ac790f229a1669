/work/main/user/target/x86_64-unknown-none/release/build/herald-user/7dbcb959f2c70272/out/spin-7dbcb959f2c70272.d: src/bin/spin.rs Cargo.toml

/work/main/user/target/x86_64-unknown-none/release/build/herald-user/7dbcb959f2c70272/out/libspin-7dbcb959f2c70272.rmeta: src/bin/spin.rs Cargo.toml

src/bin/spin.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
