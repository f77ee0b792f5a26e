//! Inputs that cannot hurt: the configs, targets and plans of the test corpus (`t/cfgs`,
//! `t/errors`, the golden plans), mutated by a generator with a fixed seed, a bounded number
//! of times, and given to the `pogo` binary. Each must end within a time limit (no hang),
//! without a panic, and either succeed or fail with an error that says where (a `-->` place,
//! a line, or a key path).
//!
//! The seed and the counts are fixed, so a failure is found again by running the test again;
//! the failing input is printed whole (or its first kilobytes) with its case number.
//! `POGO_FUZZ_CASES=N` runs more cases per kind, to look further locally.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The generator's seed: the same cases on every run.
const SEED: u64 = 0x706f_676f_2d66_757a;
/// Cases of each kind, unless `POGO_FUZZ_CASES` says otherwise.
const CASES: usize = 400;
/// How long one pogo command may take: the slowest valid case takes a few tens of ms.
const LIMIT: Duration = Duration::from_secs(20);

/// xorshift64*: small, fast, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cases() -> usize {
    std::env::var("POGO_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES)
}

fn files(dir: &str, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

/// Pieces that pogo's syntaxes give meaning to, and values that broke parsers before.
const TOKENS: &[&str] = &[
    "!",
    "!!",
    "$",
    "$a.$b",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "-",
    "- ",
    "\n",
    "\n  ",
    "\t",
    "\"",
    "'",
    "#",
    "&a",
    "*a",
    "!command ",
    "[1-1000000000]",
    "[0-9,!3]",
    "{a,b}",
    "%",
    "50%",
    "0",
    "-1",
    "18446744073709551616",
    "\u{0}",
    "\u{7f}",
    "é",
    "\u{202e}",
    "---\n",
    "...\n",
    "? ",
    "|\n",
    ">\n",
    "<<: *a",
    "!$role.db",
    "!web[1-2]",
    "host\nname",
];

/// A text mutated a few times: bytes flipped, tokens inserted, lines deleted or repeated,
/// a long run inserted.
fn mutate(rng: &mut Rng, text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(7) {
            0 if !bytes.is_empty() => {
                let i = at.min(bytes.len() - 1);
                bytes[i] ^= 1 << rng.below(8);
            }
            1 | 2 => {
                let token = rng.pick(TOKENS).as_bytes().to_vec();
                bytes.splice(at..at, token);
            }
            3 => {
                let end = (at + rng.below(40)).min(bytes.len());
                bytes.drain(at..end);
            }
            4 => {
                // A line repeated: duplicate keys, duplicate hosts.
                let start = bytes[..at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let end = bytes[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |i| at + i + 1);
                let line = bytes[start..end].to_vec();
                bytes.splice(end..end, line);
            }
            5 => {
                let run = vec![b"a[{$!,-"[rng.below(7)]; 1 + rng.below(5000)];
                bytes.splice(at..at, run);
            }
            _ => bytes.insert(at, (rng.next() & 0xff) as u8),
        }
    }
    bytes
}

/// A plan's JSON changed where it means something: a value of another type, a key removed, a
/// number at its limits, a host name that breaks the rule.
fn mutate_plan(rng: &mut Rng, plan: &Value) -> Value {
    let mut plan = plan.clone();
    for _ in 0..1 + rng.below(3) {
        let mut paths = Vec::new();
        collect_paths(&plan, &mut Vec::new(), &mut paths);
        let path = rng.pick(&paths).clone();
        let replacement = match rng.below(9) {
            0 => Value::Null,
            1 => Value::from(0),
            2 => Value::from(-1),
            3 => Value::from(u64::MAX),
            4 => Value::from("600"),
            5 => Value::from("h1\nhost2: Success"),
            6 => Value::from(""),
            7 => Value::Array(Vec::new()),
            _ => Value::from("-oProxyCommand=x"),
        };
        if rng.below(4) == 0 {
            remove(&mut plan, &path);
        } else if let Some(slot) = pointer(&mut plan, &path) {
            *slot = replacement;
        }
    }
    plan
}

fn collect_paths(value: &Value, at: &mut Vec<String>, paths: &mut Vec<Vec<String>>) {
    paths.push(at.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                at.push(key.clone());
                collect_paths(child, at, paths);
                at.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate().take(8) {
                at.push(i.to_string());
                collect_paths(child, at, paths);
                at.pop();
            }
        }
        _ => {}
    }
}

fn pointer<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let text: String = path.iter().map(|p| format!("/{p}")).collect();
    value.pointer_mut(&text)
}

fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    match pointer(value, parent) {
        Some(Value::Object(map)) => {
            map.remove(last);
        }
        Some(Value::Array(items)) => {
            if let Ok(i) = last.parse::<usize>() {
                if i < items.len() {
                    items.remove(i);
                }
            }
        }
        _ => {}
    }
}

struct Outcome {
    code: i32,
    stderr: String,
}

/// Runs pogo in `dir` with a time limit; `None` if it had to be killed.
fn pogo(dir: &Path, args: &[&str]) -> Option<Outcome> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pogo"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("POGO_STATE_DIR", dir.join("state"))
        .env("POGO_INVENTORY_TIMEOUT", "5")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pogo starts");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let stderr = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    Some(Outcome {
        code: status.code().unwrap_or(-1),
        stderr,
    })
}

fn shown(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(&input[..input.len().min(2000)]).into_owned();
    if input.len() > 2000 {
        format!("{text}... ({} bytes)", input.len())
    } else {
        text
    }
}

/// Checks one run; a problem is described with the input.
fn check(
    problems: &mut Vec<String>,
    what: &str,
    input: &[u8],
    outcome: Option<Outcome>,
    located: impl Fn(&str) -> bool,
) {
    let problem = match outcome {
        None => Some(format!("did not end within {} s", LIMIT.as_secs())),
        Some(o) if o.stderr.contains("panicked") || o.code == 101 => {
            Some(format!("panicked:\n{}", o.stderr))
        }
        Some(o) if o.code != 0 && !located(&o.stderr) => {
            Some(format!("failed without saying where:\n{}", o.stderr))
        }
        Some(o) if o.stderr.len() > 64 * 1024 => {
            Some(format!("printed {} bytes of errors", o.stderr.len()))
        }
        Some(_) => None,
    };
    if let Some(problem) = problem {
        problems.push(format!("{what} {problem}\n--- input:\n{}\n", shown(input)));
    }
}

fn finish(problems: Vec<String>, kind: &str) {
    assert!(
        problems.is_empty(),
        "{} {kind} cases went wrong:\n\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// An error about a config points at it: a `-->` line, or a line number.
fn config_located(stderr: &str) -> bool {
    stderr.contains("--> ") || stderr.contains("line ")
}

#[test]
fn mutated_configs_plan_or_fail_with_a_place() {
    let seeds: Vec<String> = [files("t/cfgs", "cfg"), files("t/errors", "cfg")]
        .concat()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(SEED);
    let mut problems = Vec::new();
    for case in 0..cases() {
        let seed = rng.pick(&seeds).clone();
        let input = mutate(&mut rng, &seed);
        std::fs::write(dir.path().join("fleet.cfg"), &input).unwrap();
        let outcome = pogo(dir.path(), &["plan", "--config", "fleet.cfg"]);
        check(
            &mut problems,
            &format!("config case {case}:"),
            &input,
            outcome,
            config_located,
        );
    }
    finish(problems, "config");
}

#[test]
fn mutated_targets_plan_or_fail_with_a_place() {
    let seeds = [
        "$colo.one,host5",
        "host[1-9,!4]",
        "!$colo.two",
        "$colo.one,!host2,host{7,8}",
        "host1, host2 ,$colo.three",
    ];
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("t/cfgs/triple.cfg"),
        dir.path().join("fleet.cfg"),
    )
    .unwrap();
    let mut rng = Rng(SEED ^ 1);
    let mut problems = Vec::new();
    for case in 0..cases() {
        let seed = rng.pick(&seeds).to_string();
        let input = mutate(&mut rng, &seed);
        // An argument cannot hold a NUL; a host file can, and takes the rest.
        let text = String::from_utf8_lossy(&input).replace('\0', "");
        let outcome = if text.contains('\n') || rng.below(3) == 0 {
            std::fs::write(dir.path().join("targets.hosts"), &input).unwrap();
            pogo(
                dir.path(),
                &[
                    "plan",
                    "--config",
                    "fleet.cfg",
                    "--hostfile",
                    "targets.hosts",
                ],
            )
        } else {
            // `--targets=` so that a list starting with `-` is a value, not a flag.
            let flag = format!("--targets={text}");
            pogo(dir.path(), &["plan", "--config", "fleet.cfg", &flag])
        };
        check(
            &mut problems,
            &format!("targets case {case}:"),
            &input,
            outcome,
            config_located,
        );
    }
    finish(problems, "targets");
}

#[test]
fn mutated_plans_are_read_or_refused_with_a_place() {
    let seeds: Vec<Value> = files("tests/golden/cfgs", "json")
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(SEED ^ 2);
    let mut problems = Vec::new();
    for case in 0..cases() {
        let seed = rng.pick(&seeds).clone();
        // Half the cases change the plan's values, half its text (duplicate keys, bad JSON).
        let input = if rng.below(2) == 0 {
            serde_json::to_vec_pretty(&mutate_plan(&mut rng, &seed)).unwrap()
        } else {
            mutate(&mut rng, &serde_json::to_string_pretty(&seed).unwrap())
        };
        std::fs::write(dir.path().join("p.json"), &input).unwrap();
        // A plan error names the file, and a line, a key path or the key it is about.
        let located = |stderr: &str| {
            stderr.contains("p.json")
                && (stderr.contains("line ") || stderr.contains(": ") || stderr.contains('`'))
        };
        for args in [
            &["show", "p.json"][..],
            &["simulate", "p.json", "--allow-edited"][..],
        ] {
            let outcome = pogo(dir.path(), args);
            check(
                &mut problems,
                &format!("plan case {case} (pogo {}):", args[0]),
                &input,
                outcome,
                located,
            );
        }
    }
    finish(problems, "plan");
}
