//! The architecture's rules, checked on the source tree (run by `cargo xtask test` and so by CI):
//! only `src/arch/` names the hardware crates, every room without unsafe code forbids it, and no
//! room imports a room above it.

#[cfg(test)]
mod tests {
    use std::{
        fs,
        path::{Path, PathBuf},
    };

    /// The rooms, lowest first: each may import only rooms before it.
    const ROOMS: [&str; 14] = [
        "abi", "vocab", "sync", "events", "arch", "mm", "console", "logger", "security", "task",
        "modules", "drivers", "bench", "shell",
    ];
    /// What the crate root exports for everyone: macros and the version.
    const ROOT_EXPORTS: [&str; 3] = ["print", "println", "VERSION"];
    /// Allowed upward references, each with its reason.
    const EXCEPTIONS: [(&str, &str, &str); 3] = [
        ("arch", "init", "the entry point calls the kernel's boot order"),
        ("arch", "kernel_entry", "the entry macro names itself"),
        ("bench", "boot_complete_timestamp", "the boot-time row reads the root's timestamp"),
    ];
    /// Rooms with no unsafe code, by the file that must say so.
    const FORBID_UNSAFE: [&str; 11] = [
        "src/abi.rs",
        "src/vocab.rs",
        "src/events/mod.rs",
        "src/console/mod.rs",
        "src/security/mod.rs",
        "src/modules/mod.rs",
        "src/drivers/mod.rs",
        "src/shell/mod.rs",
        "src/testing/mod.rs",
        "src/logger.rs",
        "src/panic.rs",
    ];
    /// Crates only `src/arch/` may name.
    const HARDWARE_CRATES: [&str; 3] = ["x86_64", "pic8259", "bootloader_api"];

    fn repository() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).expect("readable source directory").flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, found);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                found.push(path);
            }
        }
    }

    /// Each source file with its path under `src/`, comments removed (a crate's name in prose
    /// is no dependency).
    fn sources() -> Vec<(String, String)> {
        let src = repository().join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        files
            .into_iter()
            .map(|path| {
                let text = fs::read_to_string(&path).expect("readable source file");
                let code: Vec<&str> = text
                    .lines()
                    .map(|line| line.find("//").map_or(line, |at| &line[..at]))
                    .collect();
                let relative = path.strip_prefix(&src).expect("under src").to_string_lossy();
                (relative.replace('\\', "/"), code.join("\n"))
            })
            .collect()
    }

    fn room_of(relative: &str) -> &str {
        let first = relative.split('/').next().unwrap_or(relative);
        first.strip_suffix(".rs").unwrap_or(first)
    }

    /// The first path segment after each `crate::` (both `crate::a::b` and `crate::{a, b::c}`).
    fn crate_references(code: &str) -> Vec<String> {
        let mut names = Vec::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0;
                let mut item = String::new();
                for ch in group.chars() {
                    match ch {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            names.push(first_ident(&item));
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    item.push(ch);
                }
                names.push(first_ident(&item));
            } else {
                names.push(first_ident(rest));
            }
        }
        names.retain(|name| !name.is_empty());
        names
    }

    fn first_ident(text: &str) -> String {
        text.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
    }

    #[test]
    fn only_arch_names_the_hardware_crates() {
        let mut offences = Vec::new();
        for (file, code) in sources() {
            if file.starts_with("arch/") {
                continue;
            }
            for krate in HARDWARE_CRATES {
                // `x86_64::` as a path root; `crate::arch::x86_64::` would be arch's own module.
                let named = code.match_indices(&format!("{krate}::")).any(|(at, _)| {
                    let before = &code[..at];
                    !before.ends_with("arch::") && !before.ends_with(|c: char| c.is_alphanumeric())
                });
                if named || code.contains(&format!("extern crate {krate}")) {
                    offences.push(format!("src/{file} names `{krate}`"));
                }
            }
        }
        assert!(offences.is_empty(), "only src/arch/ may name the hardware crates:\n{offences:#?}");
    }

    #[test]
    fn rooms_without_unsafe_forbid_it() {
        let root = repository();
        let missing: Vec<&str> = FORBID_UNSAFE
            .into_iter()
            .filter(|file| {
                let text = fs::read_to_string(root.join(file)).unwrap_or_default();
                !text.contains("#![forbid(unsafe_code)]")
            })
            .collect();
        assert!(missing.is_empty(), "these rooms must keep #![forbid(unsafe_code)]: {missing:?}");
    }

    #[test]
    fn no_room_imports_a_room_above_it() {
        let mut offences = Vec::new();
        for (file, code) in sources() {
            let room = room_of(&file);
            let Some(level) = ROOMS.iter().position(|r| *r == room) else {
                // The crate root's own files (lib, main, testing, logger, panic) wire rooms
                // together and may import any of them.
                continue;
            };
            for name in crate_references(&code) {
                let allowed = name == room
                    || ROOT_EXPORTS.contains(&name.as_str())
                    || ROOMS[..level].contains(&name.as_str())
                    || EXCEPTIONS.iter().any(|(from, to, _)| *from == room && *to == name);
                if !allowed {
                    offences.push(format!("src/{file} ({room}) imports `crate::{name}`"));
                }
            }
        }
        offences.sort();
        offences.dedup();
        assert!(
            offences.is_empty(),
            "rooms import only rooms below them ({}):\n{offences:#?}",
            ROOMS.join(" < ")
        );
    }

    #[test]
    fn the_readmes_first_program_is_the_one_in_the_tree() {
        let readme = fs::read_to_string(repository().join("README.md")).expect("README.md");
        let marker = "```rust\n// user/src/bin/greet.rs\n";
        let start = readme.find(marker).expect("the README shows greet.rs") + marker.len();
        let shown = &readme[start..start + readme[start..].find("```").expect("closed block")];
        let file =
            fs::read_to_string(repository().join("user/src/bin/greet.rs")).expect("greet.rs");
        assert_eq!(shown, file, "README's greet.rs differs from user/src/bin/greet.rs");
    }

    #[test]
    fn the_reference_scanner_reads_both_import_forms() {
        let code = "use crate::{arch::{self, paging}, events::BUS}; let x = crate::mm::space::f();";
        assert_eq!(crate_references(code), ["arch", "events", "mm"]);
    }
}
