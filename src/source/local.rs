//! Local files, directories and glob patterns.

use std::path::{Path, PathBuf};

use walkdir::WalkDir;

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
    let io = |source: std::io::Error| SourceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        for entry in WalkDir::new(path).follow_links(true).sort_by_file_name() {
            let entry = entry.map_err(|e| SourceError::Io {
                path: e.path().unwrap_or(path).to_path_buf(),
                source: e.into(),
            })?;
            if entry.file_type().is_file() {
                add_path(entry.path(), false, listing)?;
            }
        }
        return Ok(());
    }
    let kind = classify(&path.to_string_lossy());
    let name = path.to_string_lossy().to_ascii_lowercase();
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
        size: meta.len(),
        kind,
    };
    listing.add(object, table);
    Ok(())
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
}
