//! The development key file's rule, shared by the servers and `migrate_pyotp`: a
//! key file that its group or others may read or write is refused, not used.

use std::path::Path;

/// Refuses a key file that its group or others may read or write.
#[cfg(unix)]
pub fn owner_only(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is open to group or others (mode {:o}): refusing to use it; \
             make it owner-only with `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn owner_only(_path: &Path) -> Result<(), String> {
    Ok(())
}
