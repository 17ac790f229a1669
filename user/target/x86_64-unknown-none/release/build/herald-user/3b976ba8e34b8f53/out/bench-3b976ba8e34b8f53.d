/work/main/user/target/x86_64-unknown-none/release/build/herald-user/3b976ba8e34b8f53/out/bench-3b976ba8e34b8f53.d: src/bin/bench.rs Cargo.toml

/work/main/user/target/x86_64-unknown-none/release/build/herald-user/3b976ba8e34b8f53/out/libbench-3b976ba8e34b8f53.rmeta: src/bin/bench.rs Cargo.toml

src/bin/bench.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
