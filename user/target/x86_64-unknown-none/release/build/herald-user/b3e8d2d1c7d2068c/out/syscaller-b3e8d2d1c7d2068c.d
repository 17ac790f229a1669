/work/main/user/target/x86_64-unknown-none/release/build/herald-user/b3e8d2d1c7d2068c/out/syscaller-b3e8d2d1c7d2068c.d: src/bin/syscaller.rs Cargo.toml

/work/main/user/target/x86_64-unknown-none/release/build/herald-user/b3e8d2d1c7d2068c/out/libsyscaller-b3e8d2d1c7d2068c.rmeta: src/bin/syscaller.rs Cargo.toml

src/bin/syscaller.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
