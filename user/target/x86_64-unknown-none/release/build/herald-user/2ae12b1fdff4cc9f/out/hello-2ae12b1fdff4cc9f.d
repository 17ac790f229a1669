/work/main/user/target/x86_64-unknown-none/release/build/herald-user/2ae12b1fdff4cc9f/out/hello-2ae12b1fdff4cc9f.d: src/bin/hello.rs Cargo.toml

/work/main/user/target/x86_64-unknown-none/release/build/herald-user/2ae12b1fdff4cc9f/out/libhello-2ae12b1fdff4cc9f.rmeta: src/bin/hello.rs Cargo.toml

src/bin/hello.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
