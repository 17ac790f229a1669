/work/main/user/target/x86_64-unknown-none/release/build/herald-user/1dc9ae6fba8c30fd/out/fault-1dc9ae6fba8c30fd.d: src/bin/fault.rs Cargo.toml

/work/main/user/target/x86_64-unknown-none/release/build/herald-user/1dc9ae6fba8c30fd/out/libfault-1dc9ae6fba8c30fd.rmeta: src/bin/fault.rs Cargo.toml

src/bin/fault.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
