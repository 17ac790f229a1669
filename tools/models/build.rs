//! Compiles the kernel files that `src/lib.rs` includes against loom.

fn main() {
    // Only test builds include those files (and have the `loom` dev-dependency).
    println!("cargo::rustc-cfg=loom");
}
