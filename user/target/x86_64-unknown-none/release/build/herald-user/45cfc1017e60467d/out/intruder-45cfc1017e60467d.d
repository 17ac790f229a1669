/work/main/user/target/x86_64-unknown-none/release/build/herald-user/45cfc1017e60467d/out/intruder-45cfc1017e60467d.d: src/bin/intruder.rs Cargo.toml

/work/main/user/target/x86_64-unknown-none/release/build/herald-user/45cfc1017e60467d/out/libintruder-45cfc1017e60467d.rmeta: src/bin/intruder.rs Cargo.toml

src/bin/intruder.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
