//! A Rust `std` program, built for Linux (musl, static), checking what a student's first
//! programs use: `println!`, `Vec`, `HashMap`, `format!` of `f64`, `Instant`, `thread::sleep`,
//! `thread_local!`, `env::args` — and, given the argument `panic`, a panic (exit code 101).
//! Prints one line per failed check, then "rust-std: all N passed"; the same binary passes on
//! Linux.

use std::{
    cell::Cell,
    collections::HashMap,
    env,
    time::{Duration, Instant},
};

thread_local! {
    static CALLS: Cell<u32> = const { Cell::new(0) };
}

struct Checks {
    run: u32,
    failed: u32,
}

impl Checks {
    fn check(&mut self, ok: bool, what: &str) {
        self.run += 1;
        if !ok {
            self.failed += 1;
            println!("rust-std: FAILED {what}");
        }
    }
}

fn count_call() -> u32 {
    CALLS.with(|calls| {
        calls.set(calls.get() + 1);
        calls.get()
    })
}

fn main() {
    let args: Vec<String> = env::args().collect();
    if args.get(1).map(String::as_str) == Some("panic") {
        panic!("rust-std: asked to panic");
    }
    let mut checks = Checks { run: 0, failed: 0 };
    checks.check(args.len() == 3 && args[1] == "two words" && args[2] == "x", "env::args");

    let squares: Vec<u64> = (1..=1000).map(|n| n * n).collect();
    checks.check(squares.iter().sum::<u64>() == 333_833_500, "a Vec of 1000 squares");

    let mut words: HashMap<String, usize> = HashMap::new();
    for word in "the quick brown fox jumps over the lazy dog the end".split(' ') {
        *words.entry(word.to_owned()).or_default() += 1;
    }
    checks.check(words["the"] == 3 && words.len() == 9, "a HashMap counting words");

    let root = 2f64.sqrt();
    checks.check(format!("{root:.6}") == "1.414214", "format! of an f64");
    let pi: f64 = (0..100_000)
        .map(|k| 4.0 * (if k % 2 == 0 { 1.0 } else { -1.0 }) / (2 * k + 1) as f64)
        .sum();
    checks.check(format!("{pi:.4}") == "3.1416", "a series summed in f64");

    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(30));
    let slept = start.elapsed();
    checks.check(slept >= Duration::from_millis(30), "thread::sleep lasts at least 30 ms");
    checks.check(slept < Duration::from_secs(30), "Instant measures the sleep");

    count_call();
    checks.check(count_call() == 2, "thread_local!");

    if checks.failed == 0 {
        println!("rust-std: all {} passed", checks.run);
    }
    std::process::exit(if checks.failed == 0 { 0 } else { 1 });
}
