//! Reading the files a configuration refers to, with a size cap.

use std::path::Path;

/// Configuration, key, certificate, secret and htpasswd files are small;
/// reading stops here, so a path like /dev/zero cannot exhaust memory.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

pub(crate) fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    Ok(out)
}

pub(crate) fn read_text_limited(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_limited(path)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}
