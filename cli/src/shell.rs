//! `pogo completions SHELL` and `pogo man`: shell completions and man pages, generated from
//! the same command definitions as `--help` (clap_complete, clap_mangen), so they never
//! drift from the commands.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Command, ValueEnum};

use crate::failure::{emit, invalid, Failure};

#[derive(Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args)]
#[command(
    long_about = "Print the completion script of a shell for pogo: its commands, flags and \
        the values they take. Load it from the shell's startup file, or install it where the \
        shell looks for completions.",
    after_help = "Examples:\n  \
        pogo completions bash > ~/.local/share/bash-completion/completions/pogo\n  \
        pogo completions zsh > ~/.zfunc/_pogo      # with fpath+=(~/.zfunc) in .zshrc\n  \
        pogo completions fish > ~/.config/fish/completions/pogo.fish"
)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Args)]
#[command(
    long_about = "Write a man page for pogo and one for each of its commands (pogo.1, \
        pogo-plan.1, pogo-fleet-push.1...) into a directory, ready for `man`: the same text \
        as --help.",
    after_help = "Examples:\n  \
        pogo man --out ~/.local/share/man/man1 && man pogo-apply\n  \
        sudo pogo man --out /usr/local/share/man/man1"
)]
pub struct ManArgs {
    /// The directory to write the pages into (made if need be)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// `pogo completions SHELL`.
pub fn completions(
    args: CompletionsArgs,
    mut command: Command,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let mut script = Vec::new();
    let name = command.get_name().to_string();
    match args.shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut command, &name, &mut script)
        }
        Shell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut command, &name, &mut script)
        }
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut command, &name, &mut script)
        }
    }
    emit(out, &String::from_utf8_lossy(&script))
}

/// `pogo man --out DIR`: the pages written, one line each.
pub fn man(args: ManArgs, command: Command, out: &mut dyn Write) -> Result<(), Failure> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| invalid(format!("cannot make `{}`: {e}", args.out.display())))?;
    let mut written = Vec::new();
    write_pages(
        &command.clone(),
        command.get_name(),
        &args.out,
        &mut written,
    )?;
    let mut text = String::new();
    for path in &written {
        text.push_str(&format!("{}\n", path.display()));
    }
    text.push_str(&format!(
        "{} pages; `man -M {} pogo` reads them from there\n",
        written.len(),
        args.out.parent().unwrap_or(&args.out).display()
    ));
    emit(out, &text)
}

/// The page of `command` (named `name`: `pogo-fleet-push`) and of its subcommands.
fn write_pages(
    command: &Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), Failure> {
    let page = command
        .clone()
        .name(name.to_string())
        .bin_name(name.replace('-', " "));
    let mut bytes = Vec::new();
    clap_mangen::Man::new(page.clone())
        .render(&mut bytes)
        .map_err(|e| invalid(format!("cannot render the page of `{name}`: {e}")))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, bytes)
        .map_err(|e| invalid(format!("cannot write `{}`: {e}", path.display())))?;
    written.push(path);
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

#[derive(Args)]
#[command(
    long_about = "Write a small example config, example.cfg (three colos of three hosts, a \
        sequence over two of them, limits per colo), into the current directory or --dir, to \
        try pogo with: `pogo plan --config example.cfg`, then `pogo run --config example.cfg \
        --transport local --command 'echo $POGO_HOST'` (the local transport runs the command \
        on this machine, once per host). An existing file is never overwritten.",
    after_help = "Examples:\n  \
        pogo example && pogo plan --config example.cfg\n  \
        pogo example --dir /tmp/try"
)]
pub struct ExampleArgs {
    /// Where to write example.cfg [default: the current directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// The example config, the repository's `t/cfgs/triple.cfg`.
const EXAMPLE: &str = include_str!("../../t/cfgs/triple.cfg");

/// `pogo example`.
pub fn example(args: ExampleArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from("."));
    let path = dir.join("example.cfg");
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut file| file.write_all(EXAMPLE.as_bytes()));
    match written {
        Ok(()) => emit(
            out,
            &format!(
                "Wrote {}. Next:\n  pogo plan --config {0}\n  pogo run --config {0} --transport local --command 'echo $POGO_HOST'\n",
                path.display()
            ),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(invalid(format!(
            "{} exists; pogo does not overwrite it (use it, or move it away)",
            path.display()
        ))),
        Err(e) => Err(invalid(format!("cannot write {}: {e}", path.display()))),
    }
}
