//! The oVirt API administrator's password (`admin@internal`), shared by
//! `ferry engine` and `ferry up`: from a file or the environment, never
//! from a flag alone (a flag's value shows in `ps`), kept by the engine
//! only as an argon2 hash.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

/// The environment variable that may hold the password itself.
const PASSWORD_ENV: &str = "FERRY_ADMIN_PASSWORD";

/// Where the administrator's password comes from.
#[derive(Debug, Args)]
pub struct AdminPasswordArgs {
    /// A file holding the password of admin@internal, the user oVirt's
    /// API and SDK sign in as (its first line; or set FERRY_ADMIN_PASSWORD
    /// to the password itself). Without either, oVirt clients sign in with
    /// the engine's token only.
    #[arg(
        long,
        value_name = "FILE",
        env = "FERRY_ADMIN_PASSWORD_FILE",
        verbatim_doc_comment
    )]
    admin_password_file: Option<PathBuf>,
}

impl AdminPasswordArgs {
    /// The argon2 hash of the password given, if one is; an unreadable or
    /// empty file is an error that names it.
    pub fn hash(&self) -> Result<Option<String>> {
        let password = match &self.admin_password_file {
            Some(file) => {
                let text = std::fs::read_to_string(file).with_context(|| {
                    format!(
                        "cannot read the administrator password file {}",
                        file.display()
                    )
                })?;
                let first = text.lines().next().unwrap_or_default().to_string();
                if first.is_empty() {
                    bail!(
                        "the administrator password file {} is empty: write the password on its first line",
                        file.display()
                    );
                }
                Some(first)
            }
            None => match std::env::var(PASSWORD_ENV) {
                Ok(p) if p.is_empty() => {
                    bail!("{PASSWORD_ENV} is set but empty: give it the password, or unset it")
                }
                Ok(p) => Some(p),
                Err(_) => None,
            },
        };
        password
            .map(|p| ferry_engine::ovirt::hash_password(&p).map_err(anyhow::Error::msg))
            .transpose()
    }

    /// Sets the password on a bound engine (the hash from [`Self::hash`]).
    pub fn apply(hash: Option<String>, server: &ferry_engine::Server) {
        if let Some(h) = hash {
            server.engine().sso().set_admin_hash(h);
        }
    }
}
