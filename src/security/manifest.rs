//! A Linux program's sandbox manifest (`NAME.syscalls` beside it): the Linux calls it may make
//! and, if it says, the only paths it may read, write or execute.
//!
//! The format, one item per line, `#` to the end of a line a comment:
//! - words that are Linux call names (`read write openat`), any number per line;
//! - `path ACCESS PREFIX...`: ACCESS is one or more of `r` (read: open for reading, list,
//!   stat, `access`, `readlink`, `chdir`), `w` (write: open for writing, create, truncate,
//!   `mkdir`, `unlink`, `rename`'s both ends, `symlink`) and `x` (`execve`, and a script's
//!   interpreter). A PREFIX is an absolute path; it covers itself and everything below it
//!   (`/tmp` covers `/tmp/a`, not `/tmpx`).
//!
//! A manifest with no `path` line leaves files to the call list; one with any confines the
//! program to what its lines name. Paths are checked as the file system resolves them, links
//! followed, so a link in an allowed directory leads nowhere it could not go by name.
//!
//! Limit: at most [`MAX_PATH_RULES`] prefixes per manifest.

#![forbid(unsafe_code)]

use alloc::{string::String, vec::Vec};

use crate::{abi, vocab::LinuxCallSet};

/// Most prefixes one manifest may name: each file call compares its path with each.
pub const MAX_PATH_RULES: usize = 64;
/// The word that starts a path line.
const PATH_KEYWORD: &str = "path";

/// What a file call does to a path.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum PathAccess {
    /// Opens it for reading, lists it, or reads what it is (`stat`, `readlink`, `chdir`).
    Read,
    /// Opens it for writing, creates, truncates, removes or renames it.
    Write,
    /// Runs it (`execve`, or as a script's interpreter).
    Execute,
}

impl PathAccess {
    const fn bit(self) -> u8 {
        match self {
            Self::Read => 1,
            Self::Write => 2,
            Self::Execute => 4,
        }
    }

    /// The word a denial is reported with.
    pub const fn verb(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Execute => "execute",
        }
    }
}

const ALL_ACCESS: [PathAccess; 3] = [PathAccess::Read, PathAccess::Write, PathAccess::Execute];

/// One prefix and what may be done below it (a set of [`PathAccess`] bits).
#[derive(Clone, Debug, Eq, PartialEq)]
struct PathRule {
    prefix: String,
    access: u8,
}

/// The paths a confined program may use, and how.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct PathRules(Vec<PathRule>);

/// Whether absolute, normalized `path` is `prefix` or below it.
fn is_under(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl PathRules {
    /// Whether `access` to absolute, normalized `path` is allowed.
    pub fn allows(&self, path: &str, access: PathAccess) -> bool {
        self.0.iter().any(|rule| rule.access & access.bit() != 0 && is_under(path, &rule.prefix))
    }

    fn add(&mut self, prefix: &str, access: u8) {
        match self.0.iter_mut().find(|rule| rule.prefix == prefix) {
            Some(rule) => rule.access |= access,
            None => self.0.push(PathRule { prefix: String::from(prefix), access }),
        }
    }

    /// What both `self` and `other` allow: per kind of access, each prefix of one that lies
    /// below a prefix of the other.
    pub fn intersection(&self, other: &Self) -> Self {
        let mut both = Self::default();
        for access in ALL_ACCESS {
            let bit = access.bit();
            for (mine, theirs) in [(self, other), (other, self)] {
                for rule in mine.0.iter().filter(|rule| rule.access & bit != 0) {
                    if theirs.allows(&rule.prefix, access) {
                        both.add(&rule.prefix, bit);
                    }
                }
            }
        }
        both
    }

    /// The rules a program declaring `declared` gets in a process confined by `ceiling` (`None`:
    /// not confined): never more than either; a program that names no paths keeps the
    /// process's.
    pub fn narrowed(declared: Option<&Self>, ceiling: Option<&Self>) -> Option<Self> {
        match (declared, ceiling) {
            (None, None) => None,
            (Some(rules), None) | (None, Some(rules)) => Some(rules.clone()),
            (Some(declared), Some(ceiling)) => Some(declared.intersection(ceiling)),
        }
    }
}

/// What a manifest declares.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct LinuxManifest {
    /// The Linux calls the program may make.
    pub calls: LinuxCallSet,
    /// The paths it may use (`None`: it names none, files are left to `calls`).
    pub paths: Option<PathRules>,
}

/// Why a manifest was refused: its line (from 1) and what is wrong there.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ManifestError {
    /// The line, from 1.
    pub line: u32,
    /// What is wrong with it.
    pub reason: String,
}

/// A prefix as a rule holds it: absolute, no `.`/`..`/empty components, no trailing `/`.
fn normalized_prefix(word: &str) -> Result<String, String> {
    if !word.starts_with('/') {
        return Err(alloc::format!("`{word}` is not an absolute path"));
    }
    let mut prefix = String::new();
    for component in word.split('/').filter(|component| !component.is_empty()) {
        if component == "." || component == ".." {
            return Err(alloc::format!("`{word}` has a `.` or `..` component"));
        }
        prefix.push('/');
        prefix.push_str(component);
    }
    Ok(if prefix.is_empty() { String::from("/") } else { prefix })
}

fn access_bits(word: &str) -> Option<u8> {
    let mut bits = 0;
    for letter in word.chars() {
        bits |= match letter {
            'r' => PathAccess::Read.bit(),
            'w' => PathAccess::Write.bit(),
            'x' => PathAccess::Execute.bit(),
            _ => return None,
        };
    }
    (bits != 0).then_some(bits)
}

impl LinuxManifest {
    /// Parses a manifest's text. Anything it does not understand — a word that is not a Linux
    /// call Herald knows, a bad path line — refuses the whole manifest: a typo would otherwise
    /// be a denial found only at run time.
    pub fn parse(text: &[u8]) -> Result<Self, ManifestError> {
        let mut manifest = Self::default();
        let mut prefixes = 0;
        for (index, line) in text.split(|&byte| byte == b'\n').enumerate() {
            let line_number = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let error = |reason: String| ManifestError { line: line_number, reason };
            let line = core::str::from_utf8(line)
                .map_err(|_| error(String::from("the line is not UTF-8")))?;
            let mut words = line.split('#').next().unwrap_or_default().split_whitespace();
            let mut first = words.clone();
            if first.next() == Some(PATH_KEYWORD) {
                words.next();
                let spec = words.next().unwrap_or_default();
                let bits = access_bits(spec).ok_or_else(|| {
                    error(alloc::format!("`{spec}` is not an access (letters r, w, x)"))
                })?;
                let rules = manifest.paths.get_or_insert_with(PathRules::default);
                let mut named = 0;
                for word in words {
                    prefixes += 1;
                    named += 1;
                    if prefixes > MAX_PATH_RULES {
                        return Err(error(alloc::format!(
                            "more than {MAX_PATH_RULES} path prefixes"
                        )));
                    }
                    rules.add(&normalized_prefix(word).map_err(error)?, bits);
                }
                if named == 0 {
                    return Err(error(String::from("a path line names no prefix")));
                }
                continue;
            }
            for word in words {
                let number = abi::linux::number(word).ok_or_else(|| {
                    error(alloc::format!("`{word}` is not a Linux call Herald knows"))
                })?;
                manifest.calls = manifest.calls.with(number);
            }
        }
        Ok(manifest)
    }
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use super::*;
    use crate::abi::linux;

    #[test_case]
    fn a_manifest_names_calls_and_path_prefixes() {
        let text = b"read openat # files\npath r /etc /usr/share/\npath rw /tmp\npath x /bin\n";
        let manifest = LinuxManifest::parse(text).expect("a good manifest");
        assert!(manifest.calls.contains(linux::READ) && manifest.calls.contains(linux::OPENAT));
        let paths = manifest.paths.expect("it names paths");
        assert!(paths.allows("/etc/passwd", PathAccess::Read));
        assert!(paths.allows("/etc", PathAccess::Read));
        assert!(!paths.allows("/etcetera", PathAccess::Read), "a prefix is a whole component");
        assert!(!paths.allows("/etc/passwd", PathAccess::Write));
        assert!(paths.allows("/usr/share/x", PathAccess::Read));
        assert!(!paths.allows("/usr/bin", PathAccess::Read));
        assert!(paths.allows("/tmp/a/b", PathAccess::Write));
        assert!(paths.allows("/bin/sh", PathAccess::Execute));
        assert!(!paths.allows("/bin/sh", PathAccess::Read));
        let plain = LinuxManifest::parse(b"read\n").expect("a manifest without paths");
        assert_eq!(plain.paths, None);
    }

    #[test_case]
    fn a_bad_path_line_refuses_the_manifest_and_says_where() {
        for (text, line) in [
            (&b"read\npath r etc\n"[..], 2),
            (b"path q /tmp\n", 1),
            (b"path r\n", 1),
            (b"read\n\npath r /tmp/../etc\n", 3),
            (b"reed\n", 1),
        ] {
            assert_eq!(LinuxManifest::parse(text).map_err(|error| error.line), Err(line));
        }
        let mut many = String::from("path r");
        for index in 0..=MAX_PATH_RULES {
            many.push_str(&alloc::format!(" /d{index}"));
        }
        assert!(LinuxManifest::parse(many.as_bytes()).is_err(), "too many prefixes");
    }

    #[test_case]
    fn narrowing_never_widens() {
        let parse = |text: &[u8]| {
            LinuxManifest::parse(text).expect("a good manifest").paths.expect("it names paths")
        };
        let parent = parse(b"path rw /tmp\npath r /etc\n");
        let child = parse(b"path rw /\npath x /bin\n");
        let both = PathRules::narrowed(Some(&child), Some(&parent)).expect("confined");
        assert!(both.allows("/tmp/x", PathAccess::Write));
        assert!(both.allows("/etc/x", PathAccess::Read));
        assert!(!both.allows("/etc/x", PathAccess::Write));
        assert!(!both.allows("/bin/sh", PathAccess::Execute), "the parent could not execute");
        assert!(!both.allows("/home", PathAccess::Read));
        let inner = parse(b"path r /tmp/inner\n");
        let narrower = PathRules::narrowed(Some(&inner), Some(&parent)).expect("confined");
        assert!(narrower.allows("/tmp/inner/a", PathAccess::Read));
        assert!(!narrower.allows("/tmp/other", PathAccess::Read));
        assert_eq!(PathRules::narrowed(None, Some(&parent)), Some(parent.clone()));
        assert_eq!(PathRules::narrowed(None, None), None);
    }
}
