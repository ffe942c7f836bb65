//! Shell completions and man pages, generated from the same clap
//! definitions the commands parse with, so they never disagree with
//! `--help`. Installed with (README, "Installing"):
//! `ferry completions bash > /etc/bash_completion.d/ferry` and
//! `ferry man --out-dir /usr/local/share/man/man1`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// Arguments of `ferry completions`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Arguments of `ferry man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write a page per command (ferry.1, ferry-disk-move.1, ...) into
    /// this directory; without it, print ferry(1) to stdout.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Prints the completion script for a shell.
pub fn completions<C: CommandFactory>(args: &CompletionArgs) -> Result<()> {
    let mut cmd = C::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "ferry", &mut script);
    crate::stdout::out!("{}", String::from_utf8_lossy(&script).trim_end());
    Ok(())
}

/// Writes the man pages (or prints the main one).
pub fn man<C: CommandFactory>(args: &ManArgs) -> Result<()> {
    let cmd = C::command();
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
            crate::stdout::out!("man pages written to {}", dir.display());
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .context("cannot render the man page")?;
            crate::stdout::out!("{}", String::from_utf8_lossy(&page).trim_end());
        }
    }
    Ok(())
}
