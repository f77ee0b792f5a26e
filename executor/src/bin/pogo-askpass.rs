//! A standalone `SSH_ASKPASS` helper speaking pogo's askpass protocol
//! (`pogo_executor::transport::askpass`). The pogo binary has the same entry point built in and
//! is the default helper; this one exists for the executor's own tests (which run without the
//! pogo binary) and for programs that embed the SSH transport.

use std::process::ExitCode;

fn main() -> ExitCode {
    pogo_executor::transport::askpass_main()
}
