//! `auth0-emulator` binary: parses the command line, starts the server,
//! prints `auth0-emulator listening on http://HOST:PORT` and serves forever.

use std::io::Write;
use std::process::ExitCode;

use auth0_emulator::{parse_args, start, Command, USAGE};

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(opts)) => opts,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("auth0-emulator: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let handle = match start(opts) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("auth0-emulator: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "auth0-emulator listening on {}", handle.base_url());
    let _ = out.flush();
    handle.wait();
    ExitCode::SUCCESS
}
