//! Processing registers (GDPR Art. 30) and the participant summary (Art. 26(2)).

use std::path::{Path, PathBuf};

use super::PolicyError;
use super::agreement::Agreement;

/// One generated register file: name relative to the output directory, and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterFile {
    /// File name, e.g. `register.md`.
    pub name: String,
    /// File contents.
    pub contents: String,
}

/// Generates the register files in memory.
pub fn register_files(_agreement: &Agreement) -> Vec<RegisterFile> {
    Vec::new()
}

/// Writes the register files into `out_dir` (created if missing); returns their paths.
pub fn register(agreement: &Agreement, out_dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    std::fs::create_dir_all(out_dir).map_err(|e| PolicyError::Io {
        path: out_dir.display().to_string(),
        source: e,
    })?;
    let mut paths = Vec::new();
    for f in register_files(agreement) {
        let path = out_dir.join(&f.name);
        std::fs::write(&path, &f.contents).map_err(|e| PolicyError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        paths.push(path);
    }
    Ok(paths)
}
