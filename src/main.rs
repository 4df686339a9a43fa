//! The `breakdesk` command line: a thin face over the library, in [`cli`].

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
