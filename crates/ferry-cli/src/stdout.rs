//! What `ferry` prints for its reader. A reader that goes away (`ferry job
//! list | head -1`) ends the command quietly with success, as git and
//! ripgrep do, instead of a panic about a broken pipe; any other failure
//! to write is said on stderr and exits 1.

use std::fmt;
use std::io::{self, Write};

/// Prints a line to stdout (see the module doc); used through [`out!`].
pub fn line(args: fmt::Arguments<'_>) {
    if let Err(e) = write_line(args) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("ferry: error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Prints a line for a daemon's operator (`ferry up`, `ferry engine`): a
/// reader gone away changes nothing, since stopping would leave its VMs
/// and moves behind; used through [`note!`].
pub fn note_line(args: fmt::Arguments<'_>) {
    let _ = write_line(args);
}

/// Writes `args` and a newline to stdout, flushed.
fn write_line(args: fmt::Arguments<'_>) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_fmt(args)?;
    stdout.write_all(b"\n")?;
    stdout.flush()
}

/// `println!` for a daemon's banner: write errors are ignored.
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::stdout::note_line(format_args!($($arg)*))
    };
}
pub(crate) use note;

/// `println!` for `ferry`'s output: quiet when the reader has gone.
macro_rules! out {
    () => {
        $crate::stdout::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::stdout::line(format_args!($($arg)*))
    };
}
pub(crate) use out;
