//! Builds the user programs and packs them into the boot ramdisk: Herald's own (`user/`, Rust)
//! and the Linux programs in `user/linux/` (C, built static with musl when `musl-gcc` is
//! there; Debian's `musl-tools`).
//!
//! Format (read by the kernel's `task::ramdisk`; all integers little-endian):
//! - header: magic `HRDK0001` (8 bytes), entry count `u32`, reserved `u32` (0);
//! - entries: name (32 bytes, UTF-8, NUL-padded), data offset `u64`, data length `u64`;
//! - data, each file 8-byte aligned.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// First bytes of a Herald ramdisk.
pub(crate) const MAGIC: &[u8; 8] = b"HRDK0001";
/// Bytes of a file name in an entry (longer names are refused).
pub(crate) const NAME_LEN_BYTES: usize = 32;
const HEADER_LEN_BYTES: usize = 16;
const ENTRY_LEN_BYTES: usize = NAME_LEN_BYTES + 16;

/// Packs `files` (name, contents) into the ramdisk format.
pub(crate) fn pack(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let count = u32::try_from(files.len()).map_err(|_| "too many files")?;
    let mut data_offset = HEADER_LEN_BYTES + files.len() * ENTRY_LEN_BYTES;
    let mut image = Vec::new();
    image.extend_from_slice(MAGIC);
    image.extend_from_slice(&count.to_le_bytes());
    image.extend_from_slice(&0u32.to_le_bytes());
    for (name, contents) in files {
        if name.is_empty() || name.len() > NAME_LEN_BYTES || name.contains('\0') {
            return Err(format!("program name {name:?} must be 1-{NAME_LEN_BYTES} bytes"));
        }
        let mut padded = [0u8; NAME_LEN_BYTES];
        padded[..name.len()].copy_from_slice(name.as_bytes());
        image.extend_from_slice(&padded);
        data_offset = data_offset.next_multiple_of(8);
        image.extend_from_slice(&(data_offset as u64).to_le_bytes());
        image.extend_from_slice(&(contents.len() as u64).to_le_bytes());
        data_offset += contents.len();
    }
    for (_, contents) in files {
        image.resize(image.len().next_multiple_of(8), 0);
        image.extend_from_slice(contents);
    }
    Ok(image)
}

/// Builds `user/` (release) and writes the ramdisk to `image`; returns its path.
pub(crate) fn build(repository: &Path, image: &Path) -> Result<PathBuf, String> {
    let manifest = repository.join("user/Cargo.toml");
    let target_dir = repository.join("user/target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--release", "--bins", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        // The kernel build's target directory and flags must not leak into this one.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .current_dir(repository.join("user"))
        .status()
        .map_err(|error| format!("cannot build user programs: {error}"))?;
    if !status.success() {
        return Err("building the user programs failed (see above)".into());
    }
    let binaries = target_dir.join("x86_64-unknown-none/release");
    let mut files = Vec::new();
    for source in fs::read_dir(repository.join("user/src/bin")).map_err(|e| e.to_string())? {
        let source = source.map_err(|e| e.to_string())?.path();
        let Some(name) = source.file_stem().and_then(|stem| stem.to_str()) else { continue };
        if source.extension().is_some_and(|extension| extension == "rs") {
            let elf = fs::read(binaries.join(name))
                .map_err(|error| format!("user program {name}: {error}"))?;
            files.push((name.to_owned(), elf));
        }
    }
    files.extend(linux_programs(repository, &target_dir.join("linux"))?);
    files.extend(linux_rust_programs(repository, &target_dir.join("linux-std"))?);
    files.sort();
    fs::write(image, pack(&files)?).map_err(|error| format!("cannot write ramdisk: {error}"))?;
    Ok(image.to_path_buf())
}

/// Builds each `user/linux/NAME.c` into `out/NAME` (static, stripped; again only when the
/// source is newer) with `musl-gcc` and returns them. Without `musl-gcc` they are left out, with
/// a warning: the tests that run them then say the program is not in the ramdisk.
fn linux_programs(repository: &Path, out: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let sources = repository.join("user/linux");
    let Ok(entries) = fs::read_dir(&sources) else { return Ok(Vec::new()) };
    let compiler = std::env::var("HERALD_MUSL_GCC").unwrap_or_else(|_| "musl-gcc".into());
    let mut programs = Vec::new();
    let mut warned = false;
    for entry in entries {
        let source = entry.map_err(|e| e.to_string())?.path();
        let Some(name) = source.file_stem().and_then(|stem| stem.to_str()) else { continue };
        if !source.extension().is_some_and(|extension| extension == "c") {
            continue;
        }
        let binary = out.join(name);
        let modified = |path: &Path| fs::metadata(path).and_then(|m| m.modified()).ok();
        if modified(&binary) < modified(&source) || modified(&binary).is_none() {
            fs::create_dir_all(out).map_err(|e| e.to_string())?;
            let status = Command::new(&compiler)
                .args(["-static", "-O2", "-s", "-o"])
                .arg(&binary)
                .arg(&source)
                .status();
            match status {
                Ok(status) if status.success() => {}
                Ok(_) => return Err(format!("{compiler} failed on {}", source.display())),
                Err(_) => {
                    if !warned {
                        eprintln!(
                            "herald-runner: {compiler} not found: the C programs in user/linux \
                             are left out of the ramdisk (apt install musl-tools)"
                        );
                        warned = true;
                    }
                    continue;
                }
            }
        }
        let elf = fs::read(&binary).map_err(|error| format!("{name}: {error}"))?;
        programs.push((name.to_owned(), elf));
    }
    Ok(programs)
}

/// The Rust target of the `std` programs in `user/linux/std` (a static musl build).
const LINUX_RUST_TARGET: &str = "x86_64-unknown-linux-musl";

/// Builds the Rust `std` programs (`user/linux/std/src/bin/NAME.rs`) for Linux and returns
/// them. Without the target (`rustup toolchain install` in the repository adds it) they are
/// left out, with a warning.
fn linux_rust_programs(repository: &Path, target_dir: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let crate_dir = repository.join("user/linux/std");
    if !crate_dir.join("Cargo.toml").exists() {
        return Ok(Vec::new());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--quiet", "--release", "--bins", "--target", LINUX_RUST_TARGET])
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .current_dir(&crate_dir)
        .output()
        .map_err(|error| format!("cannot build the Rust Linux programs: {error}"))?;
    if !output.status.success() {
        let errors = String::from_utf8_lossy(&output.stderr);
        if errors.contains("target may not be installed") || errors.contains("can't find crate for `std`") {
            eprintln!(
                "herald-runner: the {LINUX_RUST_TARGET} target is missing: the Rust programs in \
                 user/linux/std are left out (run `rustup toolchain install` in the repository)"
            );
            return Ok(Vec::new());
        }
        return Err(format!("building the Rust Linux programs failed:\n{errors}"));
    }
    let binaries = target_dir.join(LINUX_RUST_TARGET).join("release");
    let mut programs = Vec::new();
    for source in fs::read_dir(crate_dir.join("src/bin")).map_err(|e| e.to_string())? {
        let source = source.map_err(|e| e.to_string())?.path();
        let Some(name) = source.file_stem().and_then(|stem| stem.to_str()) else { continue };
        if source.extension().is_some_and(|extension| extension == "rs") {
            let elf = fs::read(binaries.join(name)).map_err(|error| format!("{name}: {error}"))?;
            programs.push((name.to_owned(), elf));
        }
    }
    Ok(programs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_header_entries_and_aligned_data() {
        let image =
            pack(&[("a".into(), vec![1, 2, 3]), ("bb".into(), vec![4])]).expect("valid input");
        assert_eq!(&image[..8], MAGIC);
        assert_eq!(u32::from_le_bytes(image[8..12].try_into().expect("4 bytes")), 2);
        let entry = |index: usize| {
            let at = HEADER_LEN_BYTES + index * ENTRY_LEN_BYTES + NAME_LEN_BYTES;
            let offset = u64::from_le_bytes(image[at..at + 8].try_into().expect("8 bytes"));
            let len = u64::from_le_bytes(image[at + 8..at + 16].try_into().expect("8 bytes"));
            (offset as usize, len as usize)
        };
        let (offset, len) = entry(0);
        assert_eq!(&image[offset..offset + len], &[1, 2, 3]);
        let (offset, len) = entry(1);
        assert_eq!(offset % 8, 0);
        assert_eq!(&image[offset..offset + len], &[4]);
    }

    #[test]
    fn refuses_bad_names() {
        assert!(pack(&[(String::new(), vec![])]).is_err());
        assert!(pack(&[("x".repeat(33), vec![])]).is_err());
    }
}
