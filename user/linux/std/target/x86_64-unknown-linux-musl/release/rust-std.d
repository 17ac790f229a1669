/work/main/user/linux/std/target/x86_64-unknown-linux-musl/release/rust-std: /work/main/user/linux/std/src/bin/rust-std.rs
