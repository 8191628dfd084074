//! `bearer-proxy keygen`: a new key for sealing shared-cache entries — 32
//! random bytes from the operating system, in base64.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use base64::Engine;

/// Writes the key to `out` (created mode 0600, never overwriting) or, without
/// `out`, to stdout.
pub fn run(out: Option<&Path>) -> ExitCode {
    use rand::TryRngCore;
    let mut bytes = [0u8; 32];
    if let Err(e) = rand::rngs::OsRng.try_fill_bytes(&mut bytes) {
        eprintln!("error: no randomness from the operating system: {e}");
        return ExitCode::FAILURE;
    }
    let line = base64::engine::general_purpose::STANDARD.encode(bytes) + "\n";
    let Some(path) = out else {
        print!("{line}");
        return ExitCode::SUCCESS;
    };
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    match written {
        Ok(()) => {
            eprintln!("wrote a new cache key to {} (mode 0600)", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}
