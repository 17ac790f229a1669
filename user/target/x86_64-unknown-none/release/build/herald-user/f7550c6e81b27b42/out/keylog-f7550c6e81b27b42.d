/work/main/user/target/x86_64-unknown-none/release/build/herald-user/f7550c6e81b27b42/out/keylog-f7550c6e81b27b42.d: src/bin/keylog.rs Cargo.toml

/work/main/user/target/x86_64-unknown-none/release/build/herald-user/f7550c6e81b27b42/out/libkeylog-f7550c6e81b27b42.rmeta: src/bin/keylog.rs Cargo.toml

src/bin/keylog.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
