//! Publishing the CNI node file (docs/cni.md) atomically: readers (the
//! plugin, many at once) see the old file or the new one, never a part.

use std::io::{Read, Write};
use std::path::Path;

/// Whether the file at `path` holds exactly `content`, read in chunks (the
/// trace state's snapshot is 10 MB at 10,000 Services: reading it whole
/// beside the new text raised the agent's peak memory by as much).
fn holds(path: &Path, content: &[u8]) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    if f.metadata().map(|m| m.len()).ok() != u64::try_from(content.len()).ok() {
        return false;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut rest = content;
    loop {
        match f.read(&mut buf) {
            Ok(0) => return rest.is_empty(),
            Ok(n) if n <= rest.len() && buf[..n] == rest[..n] => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            _ => return false,
        }
    }
}

/// Writes `content` to `path` through a temporary file and a rename.
/// Returns false when the file already held exactly this content.
pub fn write_if_changed(path: &Path, content: &str) -> std::io::Result<bool> {
    if holds(path, content.as_bytes()) {
        return Ok(false);
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("node"),
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_once_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/node.json");
        assert!(write_if_changed(&p, "a").unwrap());
        assert!(!write_if_changed(&p, "a").unwrap());
        assert!(write_if_changed(&p, "b").unwrap());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "b");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "temporary file left: {names:?}");
    }

    #[test]
    fn compares_beyond_the_first_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let text: String = (0..40_000).map(|i| format!("line {i}\n")).collect();
        assert!(text.len() > 3 * 64 * 1024);
        assert!(write_if_changed(&p, &text).unwrap());
        assert!(!write_if_changed(&p, &text).unwrap());
        // Same length, one byte different near the end.
        let mut changed = text.clone().into_bytes();
        let at = changed.len() - 3;
        changed[at] = b'x';
        let changed = String::from_utf8(changed).unwrap();
        assert!(write_if_changed(&p, &changed).unwrap());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), changed);
        assert!(write_if_changed(&p, &changed[..changed.len() - 1]).unwrap());
    }
}
