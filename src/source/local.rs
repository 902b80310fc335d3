//! Local files, directories and glob patterns.

use std::path::{Path, PathBuf};

use super::{classify, KeyKind, Listing, Location, LogTable, ObjectRef, SourceError};

pub(super) fn list(source: &str, listing: &mut Listing) -> Result<(), SourceError> {
    let path = Path::new(source);
    if path.exists() {
        return add_path(path, true, listing);
    }
    if source.contains(['*', '?', '[']) {
        let matches = glob::glob(source).map_err(|e| SourceError::BadPattern {
            pattern: source.to_string(),
            reason: e.msg.to_string(),
        })?;
        let mut any = false;
        for entry in matches {
            let path = entry.map_err(|e| SourceError::Io {
                path: e.path().to_path_buf(),
                source: std::io::Error::new(e.error().kind(), e.error().to_string()),
            })?;
            add_path(&path, true, listing)?;
            any = true;
        }
        if !any {
            return Err(SourceError::NoMatch {
                pattern: source.to_string(),
            });
        }
        return Ok(());
    }
    Err(SourceError::NotFound {
        path: PathBuf::from(source),
    })
}

/// Adds a file or walks a directory. A file named on its own is read whatever its name, unless
/// its key says it is a digest or insight file. In a walked directory, files outside
/// CloudTrail's key layout are read only when named as JSON Lines exports (`.jsonl`,
/// `.ndjson`, maybe `.gz`); other JSON there (such as `simulate`'s `labels.json`) is passed
/// over and counted.
fn add_path(path: &Path, named: bool, listing: &mut Listing) -> Result<(), SourceError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if meta.is_dir() {
        let real = std::fs::canonicalize(path).map_err(io(path))?;
        return walk(path, &mut vec![real], listing);
    }
    add_file(path, meta.len(), named, listing);
    Ok(())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError {
    let path = path.to_path_buf();
    move |source| SourceError::Io { path, source }
}

/// Walks directory `dir` (whose real path, and its ancestors' down the walk, are `within`):
/// its entries in name order, links followed. Each file is looked at relative to its folder,
/// not by its whole path again: a month of logs is tens of thousands of files. A link to a
/// folder the walk is already in is a loop: an error.
fn walk(dir: &Path, within: &mut Vec<PathBuf>, listing: &mut Listing) -> Result<(), SourceError> {
    let mut entries = std::fs::read_dir(dir)
        .and_then(|entries| entries.collect::<Result<Vec<_>, _>>())
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let linked = entry.file_type().map_err(io(&path))?.is_symlink();
        // A link is taken for what it points at; anything else is looked at only as needed.
        let (kind, size) = match linked {
            true => {
                let target = std::fs::metadata(&path).map_err(io(&path))?;
                (target.file_type(), Some(target.len()))
            }
            false => (entry.file_type().map_err(io(&path))?, None),
        };
        if kind.is_dir() {
            let real = match linked {
                true => std::fs::canonicalize(&path).map_err(io(&path))?,
                false => within
                    .last()
                    .cloned()
                    .unwrap_or_default()
                    .join(entry.file_name()),
            };
            if within.iter().any(|up| up.starts_with(&real)) {
                return Err(SourceError::Io {
                    path,
                    source: std::io::Error::other(
                        "a link to a folder this one is in: the folders loop",
                    ),
                });
            }
            within.push(real);
            let walked = walk(&path, within, listing);
            within.pop();
            walked?;
        } else if kind.is_file() {
            let size = match size {
                Some(size) => size,
                None => entry.metadata().map_err(io(&path))?.len(),
            };
            add_file(&path, size, false, listing);
        }
    }
    Ok(())
}

/// Adds the file at `path`, of `size` bytes, found in a walk or `named` by the user.
fn add_file(path: &Path, size: u64, named: bool, listing: &mut Listing) {
    let text = path.to_string_lossy();
    let kind = classify(&text);
    let name = text.to_ascii_lowercase();
    let stem = name.strip_suffix(".gz").unwrap_or(&name);
    let lines_export = stem.ends_with(".jsonl") || stem.ends_with(".ndjson");
    // Found in a folder, a JSON file is read only as a JSON Lines export; named by the user,
    // any file is read as CloudTrail.
    let table = match kind {
        KeyKind::JsonFile if !(named || lines_export) => None,
        KeyKind::Other if named => Some(LogTable::CloudTrail),
        _ => kind.table(),
    };
    let object = ObjectRef {
        location: Location::File(path.to_path_buf()),
        size,
        kind,
    };
    listing.add(object, table);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_walked_and_non_logs_counted() {
        let dir = tempfile::tempdir().unwrap();
        let ct = dir.path().join("AWSLogs/1/CloudTrail/us-east-1/2024/01/01");
        let digest = dir
            .path()
            .join("AWSLogs/1/CloudTrail-Digest/us-east-1/2024/01/01");
        std::fs::create_dir_all(&ct).unwrap();
        std::fs::create_dir_all(&digest).unwrap();
        std::fs::write(
            ct.join("1_CloudTrail_us-east-1_20240101T0000Z_a.json.gz"),
            b"x",
        )
        .unwrap();
        std::fs::write(
            ct.join("1_CloudTrail_us-east-1_20240101T0005Z_b.json.gz"),
            b"x",
        )
        .unwrap();
        std::fs::write(
            digest.join("1_CloudTrail-Digest_us-east-1_t_us-east-1_20240101T000000Z.json.gz"),
            b"x",
        )
        .unwrap();
        std::fs::write(dir.path().join("README.md"), b"x").unwrap();
        std::fs::write(dir.path().join("labels.json"), b"{}").unwrap();
        std::fs::write(dir.path().join("export.jsonl"), b"{}").unwrap();

        let mut listing = Listing::default();
        list(dir.path().to_str().unwrap(), &mut listing).unwrap();
        assert_eq!(listing.objects.len(), 3);
        assert!(listing.objects[0].key().ends_with("T0000Z_a.json.gz"));
        assert!(listing.objects[2].key().ends_with("export.jsonl"));
        assert_eq!(listing.skipped[&KeyKind::Digest], 1);
        assert_eq!(listing.skipped[&KeyKind::Other], 1);
        assert_eq!(listing.skipped[&KeyKind::JsonFile], 1);

        let mut globbed = Listing::default();
        list(
            &format!(
                "{}/AWSLogs/*/CloudTrail/*/2024/01/01/*b.json.gz",
                dir.path().display()
            ),
            &mut globbed,
        )
        .unwrap();
        assert_eq!(globbed.objects.len(), 1);

        let missing = list(
            &format!("{}/nope", dir.path().display()),
            &mut Listing::default(),
        );
        assert!(matches!(missing, Err(SourceError::NotFound { .. })));
        let nomatch = list(
            &format!("{}/*.nothing", dir.path().display()),
            &mut Listing::default(),
        );
        assert!(matches!(nomatch, Err(SourceError::NoMatch { .. })));
    }

    #[cfg(unix)]
    #[test]
    fn links_are_followed_and_loops_refused() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("elsewhere/2024/01/01");
        std::fs::create_dir_all(&logs).unwrap();
        let file = "1_CloudTrail_us-east-1_20240101T0000Z_a.json.gz";
        std::fs::write(logs.join(file), b"x").unwrap();
        let walked = dir.path().join("walked");
        std::fs::create_dir_all(&walked).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), walked.join("linked")).unwrap();
        std::os::unix::fs::symlink(logs.join(file), walked.join("one.jsonl.gz")).unwrap();

        let mut listing = Listing::default();
        list(walked.to_str().unwrap(), &mut listing).unwrap();
        let keys: Vec<String> = listing.objects.iter().map(|o| o.key()).collect();
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert!(
            keys[0].ends_with("linked/2024/01/01/1_CloudTrail_us-east-1_20240101T0000Z_a.json.gz")
        );
        assert!(listing.objects.iter().all(|o| o.size == 1));

        // A link back up to a folder the walk is in.
        std::os::unix::fs::symlink(&walked, logs.join("up")).unwrap();
        let looped = list(walked.to_str().unwrap(), &mut Listing::default());
        match looped {
            Err(SourceError::Io { path, source }) => {
                assert!(path.ends_with("up"), "{}", path.display());
                assert!(source.to_string().contains("loop"));
            }
            other => panic!("expected a loop error, got {other:?}"),
        }
    }
}
