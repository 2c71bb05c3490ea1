//! Publishing the CNI node file (docs/cni.md) atomically: readers (the
//! plugin, many at once) see the old file or the new one, never a part.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

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

/// The temporary file beside `path` (its directory created).
fn temporary(path: &Path) -> std::io::Result<PathBuf> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    Ok(dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("node"),
        std::process::id()
    )))
}

/// Writes `content` to `path` through a temporary file and a rename.
/// Returns false when the file already held exactly this content.
pub fn write_if_changed(path: &Path, content: &str) -> std::io::Result<bool> {
    if holds(path, content.as_bytes()) {
        return Ok(false);
    }
    let tmp = temporary(path)?;
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(true)
}

/// Writes into a temporary file and compares with the old file on the way
/// (which it reads as far as they agree).
struct Compare {
    out: std::io::BufWriter<std::fs::File>,
    old: Option<std::io::BufReader<std::fs::File>>,
    buf: Vec<u8>,
}

impl Write for Compare {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.out.write_all(data)?;
        if let Some(old) = &mut self.old {
            self.buf.resize(data.len(), 0);
            if old.read_exact(&mut self.buf).is_err() || self.buf != data {
                self.old = None;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// [`write_if_changed`] for content `fill` writes piece by piece, never
/// held whole (the trace state's snapshot is 10 MB at 10,000 Services).
pub fn write_stream_if_changed(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<bool> {
    let tmp = temporary(path)?;
    let mut w = Compare {
        out: std::io::BufWriter::with_capacity(64 * 1024, std::fs::File::create(&tmp)?),
        old: std::fs::File::open(path).ok().map(std::io::BufReader::new),
        buf: Vec::new(),
    };
    let written = fill(&mut w).and_then(|()| w.flush());
    // The same bytes, and the old file has no more.
    let same = written.is_ok()
        && w.old
            .as_mut()
            .is_some_and(|o| o.read(&mut [0u8]).ok() == Some(0));
    if written.is_err() || same {
        let _ = std::fs::remove_file(&tmp);
        return written.map(|()| false);
    }
    let file = w.out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
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
    fn streams_and_compares() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/snapshot.yaml");
        let lines = |n: usize, last: &'static str| {
            move |w: &mut dyn Write| -> std::io::Result<()> {
                for i in 0..n {
                    writeln!(w, "line {i}")?;
                }
                w.write_all(last.as_bytes())
            }
        };
        assert!(write_stream_if_changed(&p, lines(40_000, "end")).unwrap());
        assert!(!write_stream_if_changed(&p, lines(40_000, "end")).unwrap());
        // One byte different at the end, one byte more, one byte less.
        assert!(write_stream_if_changed(&p, lines(40_000, "enD")).unwrap());
        assert!(write_stream_if_changed(&p, lines(40_000, "enD!")).unwrap());
        assert!(write_stream_if_changed(&p, lines(40_000, "enD")).unwrap());
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("line 0\n") && text.ends_with("line 39999\nenD"));
        // A failing writer leaves the old file and no temporary one.
        let failed = write_stream_if_changed(&p, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("serialising failed"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
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
