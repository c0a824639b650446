//! The `cairn` command-line tool.

mod cli;
mod cli_args;
mod cmd;
mod context;
mod mount;
mod output;
mod password;
mod test_hooks;

use std::process::ExitCode;

use clap::Parser;

/// Exit codes, documented in `--help` and the README.
pub(crate) mod exit {
    /// Success.
    pub(crate) const OK: u8 = 0;
    /// A fatal error: nothing or not everything was done.
    pub(crate) const FATAL: u8 = 1;
    /// The backup finished, but some files could not be read.
    pub(crate) const PARTIAL: u8 = 3;
    /// forget kept snapshots its policy removes: Object Lock retains them.
    pub(crate) const RETAINED: u8 = 4;
}

fn main() -> ExitCode {
    cairn::tune_allocator();
    cairn::default_sigpipe();
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cairn-io")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cairn: error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FATAL);
        }
    };
    match runtime.block_on(cmd::run(args)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One line: the chain of causes joined, no backtrace.
            eprintln!("cairn: error: {e:#}");
            ExitCode::from(exit::FATAL)
        }
    }
}
