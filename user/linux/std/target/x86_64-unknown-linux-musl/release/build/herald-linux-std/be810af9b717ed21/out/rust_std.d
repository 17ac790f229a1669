/work/main/user/linux/std/target/x86_64-unknown-linux-musl/release/build/herald-linux-std/be810af9b717ed21/out/rust_std.d: src/bin/rust-std.rs

/work/main/user/linux/std/target/x86_64-unknown-linux-musl/release/build/herald-linux-std/be810af9b717ed21/out/rust_std: src/bin/rust-std.rs

src/bin/rust-std.rs:
