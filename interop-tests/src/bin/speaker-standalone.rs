//! `ferrolb standalone` for the interop tests (an integration test can run only its own package's
//! binaries): the same code path, `ferrolb_speaker::standalone::cli`.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    ferrolb_speaker::standalone::cli(&args)
}
