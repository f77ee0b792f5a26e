//! `pogo ui`: the web dashboard on this machine, for the dispatcher's jobs (reached with the
//! operator's certificate) and the runs of the local state dir. The server is
//! `pogo_remote::ui::local`; this parses the flags and says where to point the browser.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use pogo_remote::ui::local::{LocalUi, LocalUiConfig};
use pogo_remote::ui::runs::LocalRuns;

use crate::failure::{emit, exit, invalid, usage, Failure};
use crate::inputs::state_dir;
use crate::remote::serve::{daemon_runtime, Signals};
use crate::remote::{config_help, DispatcherFlags};

#[derive(Args)]
#[command(
    long_about = concat!(
        "Serve the web dashboard on this machine: the dispatcher's jobs and workers and the \
         runs of the local state dir, live, with halt, resume and retry for jobs.\n\n\
         It listens on loopback only and prints an address with a one-time token: open it in \
         a browser on this machine (the token is swapped for a session cookie at once; start \
         `pogo ui` again for a new one). Requests to the dispatcher go out with your \
         certificate, as `pogo jobs` does: the browser needs none. Without a dispatcher \
         configured, or with --local-only, it shows the local runs alone.\n\n\
         The dispatcher serves the same dashboard itself at https://DISPATCHER/ui/ to a \
         browser that holds an operator certificate (`pogo certs p12` makes one to import).\n\n",
        config_help!()
    ),
    after_help = "Examples:\n  \
        pogo ui\n  \
        pogo ui --listen 127.0.0.1:8001\n  \
        pogo ui --local-only --state-dir /var/lib/pogo"
)]
pub struct UiArgs {
    /// Where to listen: a loopback address and port (port 0 picks a free one)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where local runs are kept [default: $POGO_STATE_DIR, or .pogo in the current directory]
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Show local runs only: do not reach a dispatcher
    #[arg(long, conflicts_with_all = ["dispatcher", "cert", "key", "ca"])]
    local_only: bool,
    #[command(flatten)]
    remote: DispatcherFlags,
}

/// Whether a dispatcher is configured anywhere: given on the command line, in the
/// environment, or in the client config file.
fn dispatcher_configured(flags: &DispatcherFlags) -> bool {
    flags.is_given()
        || !flags.tls_flags_given().is_empty()
        || std::env::var_os("POGO_DISPATCHER").is_some_and(|v| !v.is_empty())
        || crate::remote::config::config_path(&|name| std::env::var_os(name))
            .is_some_and(|(path, _)| path.exists())
}

/// `pogo ui`.
pub fn run(args: UiArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    if !args.listen.ip().is_loopback() {
        return Err(usage(format!(
            "--listen {}: pogo ui listens on loopback only (127.0.0.1 or [::1]); it acts with \
             your certificate for whoever reaches it. The dispatcher serves the dashboard to \
             other machines itself, at https://DISPATCHER/ui/",
            args.listen
        )));
    }
    let dispatcher = if args.local_only || !dispatcher_configured(&args.remote) {
        None
    } else {
        Some(args.remote.client()?)
    };
    let (dir, _) = state_dir(args.state_dir.as_deref())?;
    let runtime = daemon_runtime()?;
    let result = runtime.block_on(async {
        let mut signals = Signals::new()?;
        let url = dispatcher.as_ref().map(|c| c.url().to_string());
        let ui = LocalUi::start(LocalUiConfig {
            listen: args.listen,
            dispatcher,
            runs: Some(LocalRuns::new(&dir)),
        })
        .await
        .map_err(|e| invalid(format!("cannot start the dashboard: {e}")))?;
        // The first line, which scripts and tests wait for.
        emit(out, &format!("Dashboard: {}\n", ui.url()))?;
        let _ = writeln!(
            std::io::stderr(),
            "Open it in a browser on this machine; the link works once. Showing {} and the \
             runs of {}. Ctrl-C stops.",
            match &url {
                Some(url) => format!("the jobs of {url}"),
                None => "no dispatcher's jobs (none configured)".to_string(),
            },
            dir.display()
        );
        signals.next().await;
        ui.shutdown().await;
        Ok(exit::OK)
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}
