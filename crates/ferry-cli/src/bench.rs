//! `ferry bench ARGS`: runs the `ferry-bench` binary with the same
//! arguments. The benchmarks live in a crate and binary of their own
//! because they use the test kit, which the `ferry` binary must not carry;
//! this keeps `ferry bench` working for whoever builds both.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, Result};
use clap::Args;

/// The benchmarks' executable.
const BENCH: &str = "ferry-bench";

/// Arguments of `ferry bench`: all of them go to `ferry-bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// `copy ...` or `move ...`, as `ferry-bench` takes them (`--help` for
    /// its help).
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<OsString>,
}

/// Replaces this process with `ferry-bench ARGS`; returns only on failure.
pub fn run(args: BenchArgs) -> Result<()> {
    let exe = std::env::current_exe().ok();
    let exe_dir = exe.as_deref().and_then(Path::parent);
    let path = std::env::var_os("PATH");
    let Some(bench) = find(exe_dir, path.as_deref()) else {
        let beside = exe.as_deref().map_or_else(
            || "the ferry executable".to_string(),
            |e| e.display().to_string(),
        );
        return Err(anyhow!(
            "`ferry bench` runs the {BENCH} binary, which is not next to {beside} nor on PATH; \
             build it with `cargo build --release -p ferry-bench`"
        ));
    };
    let err = Command::new(&bench).args(args.args).exec();
    Err(anyhow!(err).context(format!("cannot run {}", bench.display())))
}

/// `ferry-bench` in `exe_dir` (the `ferry` executable's directory, where
/// cargo builds both), else the first one in the `PATH` directories.
fn find(exe_dir: Option<&Path>, path: Option<&OsStr>) -> Option<PathBuf> {
    let on_path = path.into_iter().flat_map(std::env::split_paths);
    exe_dir
        .map(Path::to_path_buf)
        .into_iter()
        .chain(on_path)
        .map(|dir| dir.join(BENCH))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    /// A directory holding a `ferry-bench` with the given mode.
    fn dir_with_bench(mode: u32) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let bench = dir.path().join(BENCH);
        fs::write(&bench, "#!/bin/sh\n").expect("write ferry-bench");
        fs::set_permissions(&bench, fs::Permissions::from_mode(mode)).expect("chmod");
        dir
    }

    fn path_of(dirs: &[&Path]) -> OsString {
        std::env::join_paths(dirs).expect("a PATH")
    }

    #[test]
    fn the_one_next_to_ferry_comes_before_path() {
        let beside = dir_with_bench(0o755);
        let elsewhere = dir_with_bench(0o755);
        let path = path_of(&[elsewhere.path()]);
        assert_eq!(
            find(Some(beside.path()), Some(&path)),
            Some(beside.path().join(BENCH))
        );
    }

    #[test]
    fn else_the_first_executable_one_on_path() {
        let empty = tempfile::tempdir().expect("a temporary directory");
        let not_executable = dir_with_bench(0o644);
        let on_path = dir_with_bench(0o755);
        let later = dir_with_bench(0o755);
        let path = path_of(&[not_executable.path(), on_path.path(), later.path()]);
        assert_eq!(
            find(Some(empty.path()), Some(&path)),
            Some(on_path.path().join(BENCH))
        );
        assert_eq!(find(None, Some(&path)), Some(on_path.path().join(BENCH)));
    }

    #[test]
    fn nowhere_is_none() {
        let empty = tempfile::tempdir().expect("a temporary directory");
        let path = path_of(&[empty.path()]);
        assert_eq!(find(Some(empty.path()), Some(&path)), None);
        assert_eq!(find(Some(empty.path()), None), None);
    }
}
