//! The architecture's rules, checked on the source tree (run by `cargo xtask test` and so by CI):
//! only `src/arch/` names the hardware crates, every room without unsafe code forbids it, no
//! room imports a room above it, and no two files of one room import each other in a circle.

#[cfg(test)]
mod tests {
    use std::{
        collections::{BTreeMap, BTreeSet},
        fs,
        path::{Path, PathBuf},
    };

    /// The rooms, lowest first: each may import only rooms before it.
    const ROOMS: [&str; 16] = [
        "abi", "vocab", "bpf", "sync", "events", "arch", "mm", "console", "logger", "security",
        "fs", "task", "modules", "drivers", "bench", "shell",
    ];
    /// What the crate root exports for everyone: macros and the version.
    const ROOT_EXPORTS: [&str; 3] = ["print", "println", "VERSION"];
    /// Allowed upward references, each with its reason.
    const EXCEPTIONS: [(&str, &str, &str); 3] = [
        ("arch", "init", "the entry point calls the kernel's boot order"),
        ("arch", "kernel_entry", "the entry macro names itself"),
        ("bench", "boot_complete_timestamp", "the boot-time row reads the root's timestamp"),
    ];
    /// Rooms (and, in rooms with some unsafe, files) with no unsafe code, by the file that
    /// must say so.
    const FORBID_UNSAFE: [&str; 35] = [
        "src/abi.rs",
        "src/vocab.rs",
        "src/bpf/mod.rs",
        "src/task/drivers.rs",
        "src/events/mod.rs",
        "src/console/mod.rs",
        "src/security/mod.rs",
        "src/modules/mod.rs",
        "src/drivers/mod.rs",
        "src/shell/mod.rs",
        "src/testing/mod.rs",
        "src/logger.rs",
        "src/panic.rs",
        "src/mm/frames.rs",
        "src/mm/handlers.rs",
        "src/mm/regions.rs",
        "src/mm/space.rs",
        "src/mm/user_copy.rs",
        "src/task/elf.rs",
        "src/task/input.rs",
        "src/task/linux/console.rs",
        "src/task/linux/memory.rs",
        "src/task/linux/mod.rs",
        "src/task/linux/signals.rs",
        "src/task/linux/system.rs",
        "src/task/linux/time.rs",
        "src/task/ramdisk.rs",
        "src/task/start_stack.rs",
        "src/task/words.rs",
        "src/task/subscriptions.rs",
        "src/task/syscalls.rs",
        "src/sync/atomic.rs",
        "src/sync/handshake.rs",
        "src/sync/local.rs",
        "src/sync/lock.rs",
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

    /// Every path a use tree names: `a::{b, c::{d, e as f}}` gives `a::b`, `a::c::d`, `a::c::e`.
    fn use_paths(tree: &str) -> Vec<Vec<String>> {
        struct Parser<'a> {
            text: &'a str,
            at: usize,
        }
        impl Parser<'_> {
            fn rest(&self) -> &str {
                &self.text[self.at..]
            }
            fn skip_space(&mut self) {
                self.at = self.text.len() - self.rest().trim_start().len();
            }
            fn eat(&mut self, token: &str) -> bool {
                self.skip_space();
                let found = self.rest().starts_with(token);
                if found {
                    self.at += token.len();
                }
                found
            }
            fn ident(&mut self) -> String {
                self.skip_space();
                let ident = first_ident(self.rest());
                self.at += ident.len();
                ident
            }
            fn tree(&mut self, prefix: &[String], out: &mut Vec<Vec<String>>) {
                if self.eat("{") {
                    while !self.eat("}") {
                        let before = self.at;
                        self.tree(prefix, out);
                        if !self.eat(",") && !self.rest().trim_start().starts_with('}') {
                            return;
                        }
                        if self.at == before {
                            return;
                        }
                    }
                    return;
                }
                let ident = self.ident();
                if ident.is_empty() {
                    // `*`, or the end of the tree.
                    if self.eat("*") && !prefix.is_empty() {
                        out.push(prefix.to_vec());
                    }
                    return;
                }
                let mut path = prefix.to_vec();
                if ident != "self" {
                    path.push(ident);
                }
                if self.eat("::") {
                    self.tree(&path, out);
                } else {
                    out.push(path);
                    if self.rest().trim_start().starts_with("as ") {
                        self.eat("as");
                        self.ident();
                    }
                }
            }
        }
        let mut out = Vec::new();
        Parser { text: tree, at: 0 }.tree(&[], &mut out);
        out
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

    /// A directory of one room's files: where it is under `src/`, and the crate paths that name
    /// its `mod.rs` (`arch` re-exports `arch::x86_64` whole).
    const FILE_GROUPS: [(&str, &[&str]); 10] = [
        ("arch/x86_64", &["arch::x86_64", "arch"]),
        ("console", &["console"]),
        ("drivers", &["drivers"]),
        ("events", &["events"]),
        ("mm", &["mm"]),
        ("modules", &["modules"]),
        ("security", &["security"]),
        ("shell", &["shell"]),
        ("sync", &["sync"]),
        ("task", &["task"]),
    ];

    /// The files of one room's directory each file imports (directly, or through a name its
    /// `mod.rs` re-exports from that file), `mod.rs` itself left out: it is the room's face.
    fn file_imports(dir: &str, crate_paths: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
        let sources: BTreeMap<String, String> = sources()
            .into_iter()
            .filter_map(|(file, code)| {
                let name = file.strip_prefix(dir)?.strip_prefix('/')?.strip_suffix(".rs")?;
                (!name.contains('/')).then(|| (name.to_string(), code))
            })
            .collect();
        let siblings: BTreeSet<&str> =
            sources.keys().map(String::as_str).filter(|name| *name != "mod").collect();
        // Names the face re-exports, by the file that defines them.
        let mut exported_by: BTreeMap<String, String> = BTreeMap::new();
        let face = sources.get("mod").map_or("", String::as_str);
        for (at, _) in face.match_indices("use ") {
            for path in use_paths(&face[at + "use ".len()..]) {
                if path.len() >= 2 && siblings.contains(path[0].as_str()) {
                    exported_by.insert(path[path.len() - 1].clone(), path[0].clone());
                }
            }
        }
        let mut roots = vec!["super::".to_string()];
        roots.extend(crate_paths.iter().map(|path| format!("crate::{path}::")));
        let mut imports = BTreeMap::new();
        for name in &siblings {
            let code = &sources[*name];
            let mut targets = BTreeSet::new();
            for root in &roots {
                for (at, _) in code.match_indices(root.as_str()) {
                    let before = code[..at].chars().next_back();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                        continue;
                    }
                    for path in use_paths(&code[at + root.len()..]) {
                        // `super::{self, ..}` names the room's face itself.
                        let Some(first) = path.first().map(String::as_str) else { continue };
                        let target = if siblings.contains(first) {
                            Some(first.to_string())
                        } else {
                            exported_by.get(first).cloned()
                        };
                        targets.extend(target.filter(|target| target != name));
                    }
                }
            }
            imports.insert(name.to_string(), targets);
        }
        imports
    }

    /// The import circles in `imports`: its strongly connected parts larger than one file
    /// (Tarjan's algorithm).
    fn circles(imports: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
        struct Search<'a> {
            imports: &'a BTreeMap<String, BTreeSet<String>>,
            index: BTreeMap<&'a str, usize>,
            low: BTreeMap<&'a str, usize>,
            stack: Vec<&'a str>,
            found: Vec<Vec<String>>,
        }
        impl<'a> Search<'a> {
            fn visit(&mut self, file: &'a str) {
                let index = self.index.len();
                self.index.insert(file, index);
                self.low.insert(file, index);
                self.stack.push(file);
                for target in self.imports.get(file).into_iter().flatten() {
                    let target = target.as_str();
                    if !self.imports.contains_key(target) {
                        continue;
                    }
                    if !self.index.contains_key(target) {
                        self.visit(target);
                        let low = self.low[file].min(self.low[target]);
                        self.low.insert(file, low);
                    } else if self.stack.contains(&target) {
                        let low = self.low[file].min(self.index[target]);
                        self.low.insert(file, low);
                    }
                }
                if self.low[file] == self.index[file] {
                    let at = self.stack.iter().position(|f| *f == file).expect("on the stack");
                    let part: Vec<String> = self.stack.drain(at..).map(str::to_string).collect();
                    if part.len() > 1 {
                        self.found.push(part);
                    }
                }
            }
        }
        let mut search = Search {
            imports,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            found: Vec::new(),
        };
        for file in imports.keys() {
            if !search.index.contains_key(file.as_str()) {
                search.visit(file);
            }
        }
        for part in &mut search.found {
            part.sort();
        }
        search.found
    }

    #[test]
    fn no_two_files_of_a_room_import_each_other() {
        let mut offences = Vec::new();
        for (dir, crate_paths) in FILE_GROUPS {
            let imports = file_imports(dir, crate_paths);
            for part in circles(&imports) {
                let edges: Vec<String> = part
                    .iter()
                    .flat_map(|file| {
                        imports[file]
                            .iter()
                            .filter(|target| part.contains(target))
                            .map(move |target| format!("{file} -> {target}"))
                    })
                    .collect();
                offences.push(format!("src/{dir}: {}", edges.join(", ")));
            }
        }
        assert!(
            offences.is_empty(),
            "files of one room import each other in a circle (move what both need into a \
             third file, or invert one call through a hook):\n{offences:#?}"
        );
    }

    #[test]
    fn the_use_tree_reader_expands_groups() {
        let paths = use_paths("super::{Pid, elf::{self, plan}, ramdisk::Ramdisk as R}; x");
        let joined: Vec<String> = paths.iter().map(|path| path.join("::")).collect();
        assert_eq!(
            joined,
            ["super::Pid", "super::elf", "super::elf::plan", "super::ramdisk::Ramdisk"]
        );
        let circle = BTreeMap::from([
            ("a".to_string(), BTreeSet::from(["b".to_string()])),
            ("b".to_string(), BTreeSet::from(["c".to_string()])),
            ("c".to_string(), BTreeSet::from(["a".to_string()])),
            ("d".to_string(), BTreeSet::from(["a".to_string()])),
        ]);
        assert_eq!(circles(&circle), [["a", "b", "c"]]);
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
