//! The manifest store: a directory of `*.yaml`, `*.yml` and `*.json` files
//! that together describe a cluster (the lab's and standalone mode's source).
//! Owns reading that directory into a [`Snapshot`]; it never writes.

use crate::error::ModelError;
use crate::manifest::for_each_manifest;
use crate::snapshot::Snapshot;
use std::path::{Path, PathBuf};

/// File name endings the store reads.
pub const MANIFEST_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestStore {
    dir: PathBuf,
}

impl ManifestStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ManifestStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads `dir` into a snapshot: shorthand for `new(dir).snapshot()`.
    pub fn load(dir: impl Into<PathBuf>) -> Result<Snapshot, ModelError> {
        ManifestStore::new(dir).snapshot()
    }

    /// The manifest files, sorted by file name. Hidden files (editor and
    /// temporary files start with `.`) and sub-directories are not read.
    pub fn files(&self) -> Result<Vec<PathBuf>, ModelError> {
        let io = |source| ModelError::Io {
            path: self.dir.clone(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
            if name.starts_with('.') || !MANIFEST_EXTENSIONS.contains(&ext) {
                continue;
            }
            if entry.file_type().map_err(io)?.is_dir() {
                continue;
            }
            files.push(entry.path());
        }
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        Ok(files)
    }

    /// Every object of every file; a later object with the same kind,
    /// namespace and name replaces an earlier one (files in name order,
    /// documents in file order). Errors name the file.
    pub fn snapshot(&self) -> Result<Snapshot, ModelError> {
        let mut snap = Snapshot::default();
        for path in self.files()? {
            let text = std::fs::read_to_string(&path).map_err(|source| ModelError::Io {
                path: path.clone(),
                source,
            })?;
            // The snapshot under construction is thrown away on an error,
            // so objects can go straight into it.
            for_each_manifest(&text, &path.display().to_string(), |object| {
                snap.apply(object);
            })?;
        }
        snap.shrink_to_fit();
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Kind;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    const NODE_A: &str =
        "apiVersion: v1\nkind: Node\nmetadata: {name: a}\nspec: {podCIDR: 10.42.1.0/24}\n";

    #[test]
    fn loads_files_in_name_order_and_later_objects_win() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "10-nodes.yaml", NODE_A);
        write(
            dir.path(),
            "20-override.yml",
            "apiVersion: v1\nkind: Node\nmetadata: {name: a}\nspec: {podCIDR: 10.42.9.0/24}\n",
        );
        write(
            dir.path(),
            "30-pods.json",
            r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}}"#,
        );
        write(dir.path(), "notes.txt", "kind: Deployment");
        write(dir.path(), ".05-editor.yaml.swp", "garbage: [");
        write(dir.path(), ".hidden.yaml", "kind: Deployment");
        std::fs::create_dir(dir.path().join("sub.yaml")).unwrap();

        let store = ManifestStore::new(dir.path());
        let names: Vec<_> = store
            .files()
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["10-nodes.yaml", "20-override.yml", "30-pods.json"]);

        let snap = ManifestStore::load(dir.path()).unwrap();
        assert_eq!(snap.nodes.len(), 1);
        let spec = snap.nodes[0].spec.as_ref().unwrap();
        assert_eq!(spec.pod_cidr.as_deref(), Some("10.42.9.0/24"));
        assert_eq!(snap.pods[0].metadata.namespace.as_deref(), Some("default"));
        assert_eq!(snap.len(), 2);
        assert_eq!(store.dir(), dir.path());
    }

    #[test]
    fn empty_directory_is_an_empty_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ManifestStore::load(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn parse_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", NODE_A);
        write(
            dir.path(),
            "pods.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
        );
        let err = ManifestStore::load(dir.path()).unwrap_err().to_string();
        let file = dir.path().join("pods.yaml");
        assert_eq!(
            err,
            format!(
                "{}, document 2: kind \"Deployment\" is not supported (supported: Namespace, Node, Pod, Service, EndpointSlice, NetworkPolicy)",
                file.display()
            )
        );
    }

    #[test]
    fn missing_directory_names_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let err = ManifestStore::load(&gone).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}: ", gone.display())), "{err}");
        assert!(err.contains("No such file or directory"), "{err}");
    }

    #[test]
    fn delete_after_load() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", NODE_A);
        let mut snap = ManifestStore::load(dir.path()).unwrap();
        assert!(snap.delete(Kind::Node, None, "a").is_some());
        assert!(snap.is_empty());
    }
}
