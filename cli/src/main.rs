//! `pogo`: run commands on many hosts in a controlled manner.
//!
//! Thin by design: parse what the user typed, call the libraries, render, map errors to the
//! exit codes documented in the README.

mod apply;
mod audit;
mod certs;
mod defaults;
mod diff;
mod failure;
mod git;
mod inputs;
mod output;
mod plan;
mod remote;
mod resolver;
mod runs;
mod shell;
mod simulate;
mod stale;
mod ui;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use failure::exit;

/// mimalloc rather than glibc's malloc: planning and reading plans make millions of small
/// strings (a host name in each list that holds it), and with mimalloc planning 100,000 hosts
/// and diffing two such plans take about a fifth less time and memory (bench/README.md,
/// "Allocator"). The dispatcher and workers, long-running, get its per-thread free lists too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pogo",
    version,
    about = "Run commands on many hosts in a controlled manner",
    long_about = "Run commands on many hosts in a controlled manner.\n\n\
        pogo compiles a fleet config (tags, sequences, constraints) plus targets and a \
        command into a plan: who runs, in which order, under which limits. Plans are \
        deterministic files you can review, diff and keep in a repository; `pogo apply` runs \
        them over SSH, and `pogo run` plans and runs in one step.",
    after_help = "Start with: pogo example    (writes example.cfg here)\n\
        Then:       pogo plan --config example.cfg\n\
        And:        pogo run --config example.cfg --transport local --command 'echo $POGO_HOST'"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// When to colour output: auto (on a terminal, unless NO_COLOR is set), always, never
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "WHEN",
        default_value = "auto"
    )]
    color: output::ColorWhen,
    /// Say less: while a run goes on, no line per event, no progress and no notes; its
    /// summary at the end
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Say more: the output of every host in a run's summary, not only of those that
    /// failed; debug logs for a dispatcher or a worker (unless --log-level says)
    #[arg(long, short = 'v', global = true)]
    verbose: bool,
    /// Fit tables into this many columns, wrapping their cells [default: the terminal's
    /// width; 100 into a pipe or a file, so that saved output stays the same]
    #[arg(long, global = true, value_name = "COLUMNS",
          value_parser = clap::value_parser!(u16).range(40..))]
    width: Option<u16>,
}

/// Tables fit into this many columns when stdout is not a terminal (and no --width).
const PIPE_WIDTH: u16 = 100;

/// The width tables fit into: `--width`, else the terminal's, else [`PIPE_WIDTH`].
fn table_width(given: Option<u16>) -> u16 {
    use std::io::IsTerminal;
    given.unwrap_or_else(|| {
        if std::io::stdout().is_terminal() {
            comfy_table::Table::new().width().unwrap_or(PIPE_WIDTH)
        } else {
            PIPE_WIDTH
        }
    })
}

#[derive(Subcommand)]
enum Command {
    /// Compile a config (or a plan spec) into a plan and print its schedule
    #[command(
        long_about = "Compile a fleet config, or a plan spec that names one, into a plan.\n\n\
            Prints the schedule (one row per thread, one column per step), the constraint \
            groups with their resolved limits, and any warnings. With -o, also writes the plan \
            file: pretty JSON, byte-identical for the same inputs, ready to review and apply.\n\n\
            Flags given here override the plan spec's values.",
        after_help = "Examples:\n  \
            pogo plan --config t/cfgs/triple.cfg\n  \
            pogo plan --config fleet.cfg --targets '$colo.east' --command 'sudo restart app' -o east.plan.json\n  \
            pogo plan examples/plans/rolling-restart.yaml -o rolling-restart.plan.json"
    )]
    Plan(Box<plan::PlanArgs>),
    /// Compare two plans (or the specs or configs they come from) and say what the change does
    #[command(
        long_about = "Compare two plans and say what the change does to the rollout: the \
            command and run options that changed, hosts added and removed, hosts that move to \
            another slot or to or from the unordered lane, threads and slots added, removed \
            and reordered, dependency edges, constraint groups added and removed, limits \
            raised or lowered (with their resolved numbers) and hosts entering or leaving a \
            group; then a summary line.\n\n\
            Each side is a plan file, a plan spec or a config, told apart as `pogo validate` \
            does; specs and configs are compiled with the plan options given here, the same \
            for both sides. With --git REV, the spec (or --config) is compiled as it is at \
            REV, read with git, the config and host file it names included, and as it is in \
            the working tree. A spec that does not exist at REV is new: everything in it is \
            listed as added.\n\n\
            Exit status: 0 when the plans run the same rollout (their digests may differ), \
            2 when they differ, 1 on an error.",
        after_help = "Examples:\n  \
            pogo diff t/diff/review.old.cfg t/diff/review.new.cfg\n  \
            pogo diff old.plan.json new.plan.json --text\n  \
            pogo diff --git origin/main examples/plans/rolling-restart.yaml --format markdown\n  \
            pogo diff --git HEAD~1 --config examples/fleet.cfg --targets '$colo.east'"
    )]
    Diff(Box<diff::DiffArgs>),
    /// Print a plan file as a table, as JSON, or as a Mermaid or Graphviz graph
    #[command(
        long_about = "Print a plan file: as the schedule table `pogo plan` prints, as its JSON, \
            or as a graph of its slots for review.\n\n\
            `--format mermaid` writes a Mermaid flowchart, which GitHub and GitLab draw inside \
            a ```mermaid block of markdown; `--format dot` writes a Graphviz digraph \
            (`pogo show PLAN --format dot | dot -Tsvg > plan.svg`). Both draw one node per slot \
            (its id and host count, the hosts when few), threads as boxes, sequence edges as \
            arrows, the unordered lane, and the constraint groups with their limits; each slot \
            names the groups that limit it. Slots that share a host across threads are outlined \
            in orange. Long host lists are cut, so a plan of any size draws as many nodes as it \
            has slots and groups. Mermaid output too large for GitHub to draw is flagged on \
            stderr.",
        after_help = "Examples:\n  \
            pogo show east.plan.json\n  \
            pogo show east.plan.json --format mermaid > east.mmd\n  \
            pogo show east.plan.json --format dot | dot -Tsvg > east.svg"
    )]
    Show(plan::ShowArgs),
    /// Check configs, plan specs and plan files; exit non-zero with every error found
    #[command(
        long_about = "Check configs, plan specs and plan files, and exit non-zero with \
        every error found. Meant for the CI of config repositories.\n\n\
        A file is taken as a plan when it is JSON, as a config when its top level has `tag:`, \
        and as a plan spec otherwise. Configs are checked completely: every tag reference, \
        pattern, limit and sequence (cycles included), as if planned for all their hosts.\n\n\
        With --against, every FILE is a plan, checked against the config or plan spec it was \
        made from: a plan is stale, and refused (exit status 1), when the config's text \
        changed since it was written, when the hosts behind the config's tags changed (a \
        `!command` tag that now prints other hosts), or, against a plan spec, when the spec \
        asks for other targets, another command or other options. --allow-stale reports a \
        stale plan as a warning instead; `pogo apply` will take the same flag.",
        after_help = "Examples:\n  \
            pogo validate examples/fleet.cfg examples/plans/*.yaml\n  \
            pogo validate east.plan.json --against examples/plans/east-hotfix.yaml\n  \
            pogo validate east.plan.json --against examples/fleet.cfg --allow-stale"
    )]
    Validate(plan::ValidateArgs),
    // Its help is on `SimulateArgs`, beside the rest of the command.
    Simulate(Box<simulate::SimulateArgs>),
    /// Run a plan: its command on every target, in order, within its limits; or resume a run
    Apply(Box<apply::ApplyArgs>),
    /// Plan and apply in one step: print the schedule, confirm, run
    Run(Box<apply::RunArgs>),
    /// List the runs kept in the state directory (.pogo)
    Runs(runs::RunsArgs),
    /// Show a run's summary, or the output of its hosts; or a job's output
    Log(runs::LogArgs),
    /// Approve a step a local run waits for: the steps after it go on
    Approve(runs::ApproveArgs),
    /// Check a run's record against its plan: limits, order, one final state per host
    Audit(audit::AuditArgs),
    /// Serve the dispatcher of remote apply (HTTPS, mutual TLS; jobs kept in SQLite or
    /// PostgreSQL)
    Dispatcher(remote::serve::DispatcherArgs),
    /// Run a worker of remote apply: take tasks from the dispatcher and run them
    Worker(remote::serve::WorkerArgs),
    /// List the dispatcher's jobs
    Jobs(remote::ops::JobsArgs),
    /// Show a job on the dispatcher: its state and its hosts
    Status(remote::ops::StatusArgs),
    /// Halt a job on the dispatcher: no more hosts start
    Halt(remote::ops::HaltArgs),
    /// Resume a halted or stopped job on the dispatcher
    Resume(remote::ops::ResumeArgs),
    /// Run a job's failed hosts again
    Retry(remote::ops::RetryArgs),
    /// Close an ended job: its failed hosts no longer hold places in the fleets' budgets
    Close(remote::fleet::CloseArgs),
    /// Register and read the fleets whose budgets hold every job on the dispatcher
    Fleet(remote::fleet::FleetArgs),
    /// List the workers the dispatcher knows
    Workers(remote::ops::WorkersArgs),
    /// List the operators' actions the dispatcher took: who, when, from where, what
    #[command(name = "audit-log")]
    AuditLog(remote::ops::AuditLogArgs),
    /// Serve the web dashboard on this machine: jobs, workers and local runs, live
    Ui(ui::UiArgs),
    /// Make and read the certificates of a remote deployment (CA, dispatcher, workers,
    /// operators)
    Certs(certs::CertsArgs),
    /// Print the completion script of a shell (bash, zsh, fish) for pogo
    Completions(shell::CompletionsArgs),
    /// Write a man page for pogo and each of its commands into a directory
    Man(shell::ManArgs),
    /// Write an example config (example.cfg) to try pogo with
    Example(shell::ExampleArgs),
    /// Show the settings pogo uses here (dispatcher, defaults for runs) and where each comes
    /// from
    Config(defaults::ConfigArgs),
}

fn main() -> ExitCode {
    // Started by ssh as the SSH_ASKPASS helper of a run with --password: the argument is a
    // prompt, not a command line (see pogo_executor::transport::askpass).
    if pogo_executor::transport::keeper_requested() {
        // The keeper of a run's local commands: it reads their process groups on stdin (see
        // pogo_executor::transport::keeper).
        return pogo_executor::transport::keeper_main();
    }
    if pogo_executor::transport::askpass_requested() {
        return pogo_executor::transport::askpass_main();
    }
    let args = remote::separate_bare_dispatcher(std::env::args_os().collect());
    let color = output::ColorWhen::from_args(&args);
    let parsed = Cli::command()
        .color(color.clap())
        .try_get_matches_from(args)
        .and_then(|matches| <Cli as clap::FromArgMatches>::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    output::set(output::Output {
        color: cli.color,
        quiet: cli.quiet,
        verbose: cli.verbose,
    });
    // Servers render for browsers and logs, not for this terminal.
    if !matches!(
        cli.command,
        Command::Dispatcher(_) | Command::Worker(_) | Command::Ui(_)
    ) {
        pogo_views::text::set_table_width(table_width(cli.width));
    }
    let mut stdout = std::io::stdout().lock();
    let result = match cli.command {
        Command::Plan(args) => plan::plan(*args, &mut stdout).map(|()| exit::OK),
        Command::Diff(args) => diff::run(*args, &mut stdout),
        Command::Show(args) => plan::show(args, &mut stdout).map(|()| exit::OK),
        Command::Validate(args) => plan::validate(args, &mut stdout).map(|()| exit::OK),
        Command::Simulate(args) => simulate::run(*args, &mut stdout).map(|()| exit::OK),
        Command::Apply(args) => apply::apply(*args, &mut stdout),
        Command::Run(args) => apply::run(*args, &mut stdout),
        Command::Runs(args) => runs::runs(args, &mut stdout).map(|()| exit::OK),
        Command::Log(args) => runs::log(args, &mut stdout).map(|()| exit::OK),
        Command::Approve(args) => runs::approve(args, &mut stdout).map(|()| exit::OK),
        Command::Audit(args) => audit::run(args, &mut stdout),
        Command::Dispatcher(args) => remote::serve::dispatcher(args, &mut stdout),
        Command::Worker(args) => remote::serve::worker(args),
        Command::Jobs(args) => remote::ops::jobs(args, &mut stdout),
        Command::Status(args) => remote::ops::status(args, &mut stdout),
        Command::Halt(args) => remote::ops::halt(args, &mut stdout),
        Command::Resume(args) => remote::ops::resume(args, &mut stdout),
        Command::Retry(args) => remote::ops::retry(args, &mut stdout),
        Command::Close(args) => remote::fleet::close(args, &mut stdout),
        Command::Fleet(args) => remote::fleet::fleet(args, &mut stdout),
        Command::Workers(args) => remote::ops::workers(args, &mut stdout),
        Command::AuditLog(args) => remote::ops::audit_log(args, &mut stdout),
        Command::Certs(args) => certs::run(args, &mut stdout),
        Command::Ui(args) => ui::run(args, &mut stdout),
        Command::Completions(args) => {
            shell::completions(args, Cli::command(), &mut stdout).map(|()| exit::OK)
        }
        Command::Man(args) => shell::man(args, Cli::command(), &mut stdout).map(|()| exit::OK),
        Command::Example(args) => shell::example(args, &mut stdout).map(|()| exit::OK),
        Command::Config(args) => defaults::show(args, &mut stdout),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            let _ = stdout.flush();
            let _ = std::io::stderr().write_all(failure.message.as_bytes());
            ExitCode::from(failure.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command's help, as a terminal of `width` columns shows it.
    fn helps(command: &mut clap::Command, width: usize, out: &mut Vec<(String, String)>) {
        let name = command.get_name().to_string();
        let text = command
            .clone()
            .term_width(width)
            .render_long_help()
            .to_string();
        out.push((name, text));
        for sub in command.get_subcommands_mut() {
            helps(sub, width, out);
        }
    }

    #[test]
    fn help_examples_are_whole_commands_on_a_100_column_terminal() {
        let mut all = Vec::new();
        helps(&mut Cli::command(), 100, &mut all);
        let mut checked = 0;
        for (name, text) in &all {
            let Some(start) = text.find("\nExamples:\n") else {
                continue;
            };
            let mut continued = false;
            for line in text[start + 11..].lines().take_while(|l| !l.is_empty()) {
                assert!(line.starts_with("  "), "`{name}`: `{line}` in:\n{text}");
                let word = line.trim_start();
                let first = word
                    .split(' ')
                    .find(|w| !w.contains('=') && *w != "sudo")
                    .unwrap_or("");
                assert!(
                    continued || first == "pogo",
                    "`pogo {name} --help`: an example line does not start a command: \
                     `{line}` (wrapped? end the line before with ` \\`):\n{text}"
                );
                assert!(
                    !word.contains(".crt"),
                    "`{name}`: certificates are .pem files: `{line}`"
                );
                continued = word.ends_with('\\');
                checked += 1;
            }
        }
        assert!(checked > 40, "only {checked} example lines found");
    }

    #[test]
    fn a_required_argument_is_shown_required() {
        for args in [
            ["status"],
            ["log"],
            ["halt"],
            ["resume"],
            ["retry"],
            ["close"],
        ] {
            let line = std::iter::once("pogo").chain(args);
            let error = Cli::try_parse_from(line).err().expect("refused");
            let text = error.to_string();
            assert!(text.contains("required arguments"), "{text}");
            let usage = Cli::command()
                .find_subcommand_mut(args[0])
                .unwrap()
                .render_usage()
                .to_string();
            assert!(usage.contains(" <"), "{usage}");
            assert!(
                !usage.contains("[JOB]") && !usage.contains("[RUN_ID]"),
                "{usage}"
            );
        }
    }
}

/// The `pogo` commands of the README's and the docs' shell blocks.
#[cfg(test)]
mod documented_commands {
    use super::*;

    const DOCS: [(&str, &str); 14] = [
        ("README.md", include_str!("../../README.md")),
        ("docs/apply.md", include_str!("../../docs/apply.md")),
        ("docs/certs.md", include_str!("../../docs/certs.md")),
        ("docs/config.md", include_str!("../../docs/config.md")),
        ("docs/dashboard.md", include_str!("../../docs/dashboard.md")),
        ("docs/diff.md", include_str!("../../docs/diff.md")),
        ("docs/fleets.md", include_str!("../../docs/fleets.md")),
        ("docs/gates.md", include_str!("../../docs/gates.md")),
        ("docs/ha.md", include_str!("../../docs/ha.md")),
        (
            "docs/operations.md",
            include_str!("../../docs/operations.md"),
        ),
        (
            "docs/plan-format.md",
            include_str!("../../docs/plan-format.md"),
        ),
        ("docs/plan-spec.md", include_str!("../../docs/plan-spec.md")),
        ("docs/remote.md", include_str!("../../docs/remote.md")),
        ("docs/simulate.md", include_str!("../../docs/simulate.md")),
    ];

    /// Splits a shell line into words: blanks, single and double quotes (enough for docs).
    fn words(line: &str) -> Vec<String> {
        let (mut words, mut word, mut quote, mut started) =
            (Vec::new(), String::new(), None, false);
        for c in line.chars() {
            match (quote, c) {
                (None, '\'' | '"') => (quote, started) = (Some(c), true),
                (Some(q), c) if c == q => quote = None,
                (None, ' ') => {
                    if started {
                        words.push(std::mem::take(&mut word));
                    }
                    started = false;
                }
                (_, c) => (word.push(c), started = true).1,
            }
        }
        if started {
            words.push(word);
        }
        words
    }

    /// Each `pogo ...` command of a ```sh block, continuation lines joined, comments and what
    /// follows a pipe or a redirection dropped.
    fn commands(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for block in text.split("```sh\n").skip(1) {
            let block = &block[..block.find("```").expect("blocks are closed")];
            let mut line = String::new();
            for part in block.lines() {
                let part = part.trim();
                if let Some(head) = part.strip_suffix('\\') {
                    line.push_str(head);
                    continue;
                }
                line.push_str(part);
                let whole = std::mem::take(&mut line);
                let whole = whole.split(" # ").next().unwrap_or("");
                let whole = whole.split(['|', '>']).next().unwrap_or("").trim();
                let start = whole.split(' ').position(|w| w == "pogo");
                let Some(start) = start else { continue };
                let words: Vec<&str> = whole.split(' ').collect();
                if words[..start]
                    .iter()
                    .all(|w| w.contains('=') || *w == "sudo")
                {
                    out.push(words[start..].join(" "));
                }
            }
        }
        out
    }

    #[test]
    fn every_documented_command_line_is_one_pogo_accepts() {
        let mut checked = 0;
        for (file, text) in DOCS {
            for command in commands(text) {
                let args = words(&command);
                if let Err(error) = Cli::try_parse_from(remote::separate_bare_dispatcher(
                    args.iter().map(Into::into).collect(),
                )) {
                    // `--help` and `--version` end parsing early, as they should.
                    if error.use_stderr() {
                        panic!("{file}: `{command}` is refused:\n{error}");
                    }
                }
                checked += 1;
            }
        }
        assert!(checked > 60, "only {checked} commands found");
    }
}
