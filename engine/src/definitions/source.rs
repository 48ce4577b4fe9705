//! The in-memory set of definition files the loader works on.
//!
//! A [`SourceSet`] maps a relative path (`workflows/sales.yaml`, `rules/guards.rhai`,
//! `templates/messages/new_lead.tr.txt`) to its bytes. It is filled from a folder on
//! disk, from the copy embedded in the binary, or (later) from the database, and the
//! loader never reads anything else.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use include_dir::{Dir, include_dir};
use sha2::{Digest, Sha256};

static EMBEDDED_WORKFLOWS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../workflows");
static EMBEDDED_RULES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../rules");
static EMBEDDED_TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../templates");

/// The top-level folders a definition set is made of.
pub const ROOTS: [&str; 3] = ["workflows", "rules", "templates"];

/// The web UI's HTML screens live beside the message templates but belong to the binary
/// (they must match its scripts and styles): they are not part of a definition set, so a
/// reload never changes them and a stored version never rolls them back.
pub const UI_TEMPLATES: &str = "templates/ui";

fn is_definition_path(path: &str) -> bool {
    path != UI_TEMPLATES && !path.starts_with("templates/ui/")
}

/// Relative path → content of every definition file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSet {
    files: BTreeMap<String, Vec<u8>>,
}

impl SourceSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a file; `path` is relative, with `/` separators.
    pub fn insert(&mut self, path: impl Into<String>, content: impl Into<Vec<u8>>) {
        self.files.insert(path.into(), content.into());
    }

    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The defaults shipped inside the binary.
    pub fn embedded() -> Self {
        let mut set = SourceSet::new();
        for (root, dir) in [
            ("workflows", &EMBEDDED_WORKFLOWS),
            ("rules", &EMBEDDED_RULES),
            ("templates", &EMBEDDED_TEMPLATES),
        ] {
            add_embedded(&mut set, root, dir);
        }
        set
    }

    /// Reads `dir/workflows`, `dir/rules` and `dir/templates` recursively (missing
    /// folders are skipped; hidden files and folders are ignored).
    pub fn from_dir(dir: &Path) -> io::Result<Self> {
        let mut set = SourceSet::new();
        for root in ROOTS {
            let path = dir.join(root);
            if path.is_dir() {
                read_tree(&mut set, &path, root, 0)?;
            }
        }
        Ok(set)
    }

    /// Hex SHA-256 over the sorted relative paths and contents: the version id of the set.
    pub fn version(&self) -> String {
        let mut hasher = Sha256::new();
        for (path, content) in &self.files {
            hasher.update((path.len() as u64).to_le_bytes());
            hasher.update(path.as_bytes());
            hasher.update((content.len() as u64).to_le_bytes());
            hasher.update(content);
        }
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

fn add_embedded(set: &mut SourceSet, root: &str, dir: &Dir<'_>) {
    for file in dir.files() {
        let rel = file.path().to_string_lossy().replace('\\', "/");
        let path = format!("{root}/{rel}");
        if is_definition_path(&path) {
            set.insert(path, file.contents().to_vec());
        }
    }
    for sub in dir.dirs() {
        add_embedded(set, root, sub);
    }
}

fn read_tree(set: &mut SourceSet, dir: &Path, rel: &str, depth: usize) -> io::Result<()> {
    if depth > 16 {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let child = format!("{rel}/{name}");
        if !is_definition_path(&child) {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            read_tree(set, &entry.path(), &child, depth + 1)?;
        } else if kind.is_file() || kind.is_symlink() {
            set.insert(child, std::fs::read(entry.path())?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_changes_with_any_path_or_content() {
        let mut a = SourceSet::new();
        a.insert("workflows/a.yaml", "x");
        let v1 = a.version();
        assert_eq!(v1.len(), 64);
        a.insert("workflows/a.yaml", "y");
        assert_ne!(a.version(), v1);
        let mut b = SourceSet::new();
        b.insert("workflows/b.yaml", "x");
        assert_ne!(b.version(), v1);
    }

    #[test]
    fn the_ui_screens_are_not_part_of_a_definition_set() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("templates/ui")).unwrap();
        std::fs::create_dir_all(tmp.path().join("templates/messages")).unwrap();
        std::fs::write(tmp.path().join("templates/ui/board.html"), "<p>").unwrap();
        std::fs::write(tmp.path().join("templates/messages/a.tr.txt"), "x").unwrap();
        let set = SourceSet::from_dir(tmp.path()).unwrap();
        assert_eq!(
            set.files().map(|(p, _)| p).collect::<Vec<_>>(),
            ["templates/messages/a.tr.txt"]
        );
        assert!(
            !SourceSet::embedded()
                .files()
                .any(|(p, _)| p.starts_with("templates/ui/"))
        );
    }

    #[test]
    fn a_folder_reads_like_the_embedded_copy() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("workflows/sub")).unwrap();
        std::fs::write(tmp.path().join("workflows/sub/x.yaml"), "roles: []").unwrap();
        std::fs::write(tmp.path().join("workflows/.hidden.yaml"), "bad").unwrap();
        let set = SourceSet::from_dir(tmp.path()).unwrap();
        assert_eq!(
            set.files().map(|(p, _)| p).collect::<Vec<_>>(),
            ["workflows/sub/x.yaml"]
        );
        assert!(
            SourceSet::embedded()
                .files()
                .any(|(p, _)| p.starts_with("workflows/"))
        );
    }
}
