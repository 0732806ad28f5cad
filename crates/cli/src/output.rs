//! Printing that never panics. `println!` panics when stdout is a closed pipe (`torchlight info | head -1`);
//! these macros drop what cannot be written instead, so a command whose output is cut goes on (an ingest
//! still commits its work) and ends with its own exit status.

#[doc(hidden)]
pub fn write_stdout(args: std::fmt::Arguments) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_fmt(args);
}

#[doc(hidden)]
pub fn write_stderr(args: std::fmt::Arguments) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// `print!` that drops output a closed pipe cannot take.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!($($arg)*)) };
}

/// `println!` that drops output a closed pipe cannot take.
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprint!` that drops output a closed pipe cannot take.
#[macro_export]
macro_rules! eout {
    ($($arg:tt)*) => { $crate::output::write_stderr(format_args!($($arg)*)) };
}

/// `eprintln!` that drops output a closed pipe cannot take.
#[macro_export]
macro_rules! eoutln {
    () => { $crate::output::write_stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_stderr(format_args!("{}\n", format_args!($($arg)*))) };
}
