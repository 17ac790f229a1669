/work/main/user/target/x86_64-unknown-none/release/build/herald-user/8ae15687c1e921ab/out/sleeper-8ae15687c1e921ab.d: src/bin/sleeper.rs Cargo.toml

/work/main/user/target/x86_64-unknown-none/release/build/herald-user/8ae15687c1e921ab/out/libsleeper-8ae15687c1e921ab.rmeta: src/bin/sleeper.rs Cargo.toml

src/bin/sleeper.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
