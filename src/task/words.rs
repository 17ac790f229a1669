//! Splits an argument string into a Linux program's argv the way a POSIX shell splits simple
//! words (POSIX.1-2017 XCU §2.2 "Quoting"): blanks separate words; single quotes keep
//! everything up to the next single quote; double quotes group, with a backslash escaping
//! `"`, `\`, `$` and `` ` `` inside them; a backslash outside quotes keeps the next character.
//! No expansion of any kind (`$`, globs, `~`) happens.

#![forbid(unsafe_code)]

use alloc::{string::String, vec::Vec};

/// A quote opened and never closed (or a backslash at the very end).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct UnclosedQuote;

/// The words of `line`.
pub fn split(line: &str) -> Result<Vec<String>, UnclosedQuote> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word exists once anything, even an empty pair of quotes, has begun it.
    let mut in_word = false;
    let mut characters = line.chars();
    while let Some(character) = characters.next() {
        match character {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(core::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match characters.next().ok_or(UnclosedQuote)? {
                        '\'' => break,
                        inside => word.push(inside),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match characters.next().ok_or(UnclosedQuote)? {
                        '"' => break,
                        '\\' => match characters.next().ok_or(UnclosedQuote)? {
                            escaped @ ('"' | '\\' | '$' | '`') => word.push(escaped),
                            // A backslash before a newline joins lines; before anything else
                            // it is itself.
                            '\n' => {}
                            other => {
                                word.push('\\');
                                word.push(other);
                            }
                        },
                        inside => word.push(inside),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match characters.next().ok_or(UnclosedQuote)? {
                    '\n' => {}
                    escaped => word.push(escaped),
                }
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use alloc::vec;

    use super::*;

    fn words(line: &str) -> Vec<String> {
        split(line).expect("well formed")
    }

    #[test_case]
    fn blanks_separate_and_quotes_group() {
        assert_eq!(words("  a\tbc  d "), vec!["a", "bc", "d"]);
        assert_eq!(words("'two words' x"), vec!["two words", "x"]);
        assert_eq!(words("\"a 'b' c\" 'd \"e\"'"), vec!["a 'b' c", "d \"e\""]);
        assert_eq!(words("pre'fix 'post"), vec!["prefix post"]);
        assert_eq!(words("'' \"\""), vec!["", ""]);
        assert!(words("").is_empty());
    }

    #[test_case]
    fn backslashes_escape_as_a_shell_does() {
        assert_eq!(words(r"a\ b"), vec!["a b"]);
        assert_eq!(words(r#""x\"y\\z\n""#), vec![r#"x"y\z\n"#]);
        assert_eq!(words(r"'\'"), vec![r"\"]);
        assert_eq!(words("$HOME *"), vec!["$HOME", "*"]);
    }

    #[test_case]
    fn an_unclosed_quote_is_an_error() {
        assert_eq!(split("'open"), Err(UnclosedQuote));
        assert_eq!(split("\"open"), Err(UnclosedQuote));
        assert_eq!(split("end\\"), Err(UnclosedQuote));
    }
}
