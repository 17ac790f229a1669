//! Builds the boot image's file tree and packs it as a cpio archive (`newc`, the format of
//! Linux's initramfs; read by the kernel's `task::ramdisk`):
//! - `/bin/NAME`: Herald's own programs (`user/src/bin`, Rust), the Linux programs in
//!   `user/linux/` (C, built static with musl when `musl-gcc` is there; Debian's `musl-tools`)
//!   and `user/linux/std` (Rust `std`, for `x86_64-unknown-linux-musl`), with each one's
//!   sandbox manifest `user/linux/NAME.syscalls` as `/bin/NAME.syscalls`;
//! - then the repository's `rootfs/` tree, laid over that;
//! - then the tree of the directory `HERALD_ROOTFS_ADD` names, if set, laid over all of it
//!   (`DIR/bin/prog` becomes `/bin/prog`).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// The variable naming a directory whose tree joins the image.
pub(crate) const ROOTFS_ADD_VARIABLE: &str = "HERALD_ROOTFS_ADD";
/// `newc` header magic (cpio(5), "New ASCII Format").
const NEWC_MAGIC: &str = "070701";
/// The name of the entry that ends an archive.
const TRAILER: &str = "TRAILER!!!";
/// Mode bits of a regular file, a directory and a symbolic link (`S_IFREG`, `S_IFDIR`,
/// `S_IFLNK`).
const REGULAR: u32 = 0o100_000;
const DIRECTORY: u32 = 0o040_000;
const SYMLINK: u32 = 0o120_000;

/// One file of the image: its path (relative, `/`-separated), permission bits, contents (a
/// link's: its target).
pub(crate) struct ImageFile {
    pub(crate) mode: u32,
    pub(crate) contents: Vec<u8>,
    pub(crate) symlink: bool,
}

/// Packs `files` (path → file) as a `newc` archive, each directory on a path as its own entry
/// before what it holds.
pub(crate) fn pack(files: &BTreeMap<String, ImageFile>) -> Result<Vec<u8>, String> {
    let mut archive = Vec::new();
    let mut directories = std::collections::BTreeSet::new();
    let mut inode = 1u32;
    for (path, file) in files {
        if path.is_empty()
            || path.starts_with('/')
            || path.split('/').any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(format!("image path {path:?} is not a plain relative path"));
        }
        let parts: Vec<&str> = path.split('/').collect();
        for depth in 1..parts.len() {
            let directory = parts[..depth].join("/");
            if directories.insert(directory.clone()) {
                entry(&mut archive, &directory, DIRECTORY | 0o755, inode, &[]);
                inode += 1;
            }
        }
        let kind = if file.symlink { SYMLINK | 0o777 } else { REGULAR | (file.mode & 0o7777) };
        entry(&mut archive, path, kind, inode, &file.contents);
        inode += 1;
    }
    entry(&mut archive, TRAILER, 0, 0, &[]);
    Ok(archive)
}

fn entry(archive: &mut Vec<u8>, name: &str, mode: u32, inode: u32, contents: &[u8]) {
    let name_len_bytes = name.len() + 1;
    let fields = [
        inode,
        mode,
        0,                                         // uid
        0,                                         // gid
        if mode & DIRECTORY != 0 { 2 } else { 1 }, // nlink
        0,                                         // mtime: fixed, so images are reproducible
        contents.len() as u32,
        0,
        0,
        0,
        0, // dev and rdev, major and minor
        name_len_bytes as u32,
        0, // check
    ];
    archive.extend_from_slice(NEWC_MAGIC.as_bytes());
    for field in fields {
        archive.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    archive.extend_from_slice(name.as_bytes());
    archive.push(0);
    archive.resize(archive.len().next_multiple_of(4), 0);
    archive.extend_from_slice(contents);
    archive.resize(archive.len().next_multiple_of(4), 0);
}

/// Adds the regular files under `root` to `files` as paths relative to it, replacing files
/// already there. A symbolic link with a relative target stays a link (busybox's applet links
/// are hundreds of names for one 2 MB file); one with an absolute target is followed, since that
/// path is the host's. Anything else is skipped with a warning.
fn add_tree(root: &Path, files: &mut BTreeMap<String, ImageFile>) -> Result<(), String> {
    fn walk(
        root: &Path,
        directory: &Path,
        files: &mut BTreeMap<String, ImageFile>,
    ) -> Result<(), String> {
        let mut entries: Vec<_> = fs::read_dir(directory)
            .map_err(|error| format!("{}: {error}", directory.display()))?
            .collect::<Result<_, _>>()
            .map_err(|error| format!("{}: {error}", directory.display()))?;
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let path = entry.path();
            if let Ok(target) = fs::read_link(&path)
                && target.is_relative()
                && let (Some(target), Ok(relative)) = (target.to_str(), path.strip_prefix(root))
                && let Some(relative) = relative.to_str()
            {
                let link = ImageFile { mode: 0o777, contents: target.into(), symlink: true };
                files.insert(relative.replace(std::path::MAIN_SEPARATOR, "/"), link);
                continue;
            }
            let metadata =
                fs::metadata(&path).map_err(|error| format!("{}: {error}", path.display()))?;
            if metadata.is_dir() {
                walk(root, &path, files)?;
            } else if metadata.is_file() {
                let relative = path.strip_prefix(root).expect("under the root");
                let Some(relative) = relative.to_str() else {
                    eprintln!("herald-runner: {} is not UTF-8: left out", path.display());
                    continue;
                };
                let contents =
                    fs::read(&path).map_err(|error| format!("{}: {error}", path.display()))?;
                use std::os::unix::fs::PermissionsExt as _;
                let mode = metadata.permissions().mode();
                files.insert(
                    relative.replace(std::path::MAIN_SEPARATOR, "/"),
                    ImageFile { mode, contents, symlink: false },
                );
            } else {
                eprintln!("herald-runner: {} is not a file or directory: left out", path.display());
            }
        }
        Ok(())
    }
    walk(root, root, files)
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
    let mut programs = Vec::new();
    for source in fs::read_dir(repository.join("user/src/bin")).map_err(|e| e.to_string())? {
        let source = source.map_err(|e| e.to_string())?.path();
        let Some(name) = source.file_stem().and_then(|stem| stem.to_str()) else { continue };
        if source.extension().is_some_and(|extension| extension == "rs") {
            let elf = fs::read(binaries.join(name))
                .map_err(|error| format!("user program {name}: {error}"))?;
            programs.push((name.to_owned(), elf));
        }
    }
    programs.extend(linux_programs(repository, &target_dir.join("linux"))?);
    programs.extend(linux_rust_programs(repository, &target_dir.join("linux-std"))?);
    let mut files = BTreeMap::new();
    for (name, elf) in programs {
        files.insert(
            format!("bin/{name}"),
            ImageFile { mode: 0o755, contents: elf, symlink: false },
        );
    }
    for manifest in fs::read_dir(repository.join("user/linux")).map_err(|e| e.to_string())? {
        let manifest = manifest.map_err(|e| e.to_string())?.path();
        if manifest.extension().is_some_and(|extension| extension == "syscalls") {
            let name = manifest.file_name().and_then(|name| name.to_str()).expect("UTF-8 name");
            let contents = fs::read(&manifest).map_err(|error| format!("{name}: {error}"))?;
            files
                .insert(format!("bin/{name}"), ImageFile { mode: 0o644, contents, symlink: false });
        }
    }
    add_busybox(&mut files)?;
    let rootfs = repository.join("rootfs");
    if rootfs.is_dir() {
        add_tree(&rootfs, &mut files)?;
    }
    if let Some(added) = std::env::var_os(ROOTFS_ADD_VARIABLE) {
        let added = PathBuf::from(added);
        if !added.is_dir() {
            return Err(format!("{ROOTFS_ADD_VARIABLE}={}: not a directory", added.display()));
        }
        add_tree(&added, &mut files)?;
    }
    fs::write(image, pack(&files)?).map_err(|error| format!("cannot write ramdisk: {error}"))?;
    Ok(image.to_path_buf())
}

/// The variable naming the busybox binary to pack (default: the host's, Debian's
/// `busybox-static` package), and where its applet links go.
const BUSYBOX_VARIABLE: &str = "HERALD_BUSYBOX";
const DEFAULT_BUSYBOX: &str = "/bin/busybox";
const APPLET_DIRECTORY: &str = "usr/bin";

/// Adds busybox as `/bin/busybox`, `/bin/sh` and one link per applet in `/usr/bin` (the
/// applets it lists with `--list`), if the host has it; without it, a warning, and the tests
/// that run it say it is not in the image.
fn add_busybox(files: &mut BTreeMap<String, ImageFile>) -> Result<(), String> {
    let path = std::env::var(BUSYBOX_VARIABLE).unwrap_or_else(|_| DEFAULT_BUSYBOX.into());
    let Ok(contents) = fs::read(&path) else {
        eprintln!(
            "herald-runner: no busybox at {path} (Debian: apt install busybox-static): left out"
        );
        return Ok(());
    };
    let listed = Command::new(&path)
        .arg("--list")
        .output()
        .map_err(|error| format!("{path} --list: {error}"))?;
    let applets = String::from_utf8_lossy(&listed.stdout).into_owned();
    files.insert("bin/busybox".into(), ImageFile { mode: 0o755, contents, symlink: false });
    let link = |target: &str| ImageFile { mode: 0o777, contents: target.into(), symlink: true };
    files.insert("bin/sh".into(), link("busybox"));
    for applet in applets.split_whitespace().filter(|applet| *applet != "busybox") {
        files.insert(format!("{APPLET_DIRECTORY}/{applet}"), link("/bin/busybox"));
    }
    Ok(())
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
fn linux_rust_programs(
    repository: &Path,
    target_dir: &Path,
) -> Result<Vec<(String, Vec<u8>)>, String> {
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
        if errors.contains("target may not be installed")
            || errors.contains("can't find crate for `std`")
        {
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

    fn file(contents: &[u8]) -> ImageFile {
        ImageFile { mode: 0o755, contents: contents.to_vec(), symlink: false }
    }

    #[test]
    fn packs_directories_files_and_the_trailer_in_newc() {
        let files =
            BTreeMap::from([("bin/a".to_owned(), file(b"xyz")), ("t/b.sh".to_owned(), file(b""))]);
        let archive = pack(&files).expect("valid paths");
        let text = String::from_utf8_lossy(&archive);
        // bin (directory), bin/a, t (directory), t/b.sh, the trailer.
        assert_eq!(text.matches(NEWC_MAGIC).count(), 5);
        assert!(text.starts_with("070701"));
        let at = text.find("bin/a\0").expect("bin/a");
        assert_eq!(
            &archive[at - 110 + 6 + 8..at - 110 + 6 + 16],
            b"000081ed",
            "mode: regular, 0755"
        );
        assert!(archive.windows(3).any(|window| window == b"xyz"));
        assert!(text.contains(TRAILER));
        assert_eq!(archive.len() % 4, 0);
    }

    #[test]
    fn refuses_paths_that_are_not_plain() {
        for path in ["/abs", "a//b", "../up", "a/./b", ""] {
            let files = BTreeMap::from([(path.to_owned(), file(b""))]);
            assert!(pack(&files).is_err(), "{path:?}");
        }
    }
}
