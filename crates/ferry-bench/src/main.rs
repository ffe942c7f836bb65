//! `ferry-bench`: Ferry's benchmarks, each printing a table of figures
//! (`ferry bench ARGS` runs this binary with the same arguments).

use clap::Parser;
use ferry_bench::BenchCommand;

/// Ferry's benchmarks, whose output is a table of figures.
#[derive(Debug, Parser)]
#[command(name = "ferry-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

fn main() -> std::process::ExitCode {
    // The in-process engine and agent of `move` log as `ferry up` does.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match ferry_bench::run(Cli::parse().command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry-bench: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
