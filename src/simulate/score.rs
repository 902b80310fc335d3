//! Scoring findings against the labels `simulate` writes: which injected attacks were found
//! at Medium or above, how many of their events are in a finding, and how many findings fell
//! on benign records (per 100k benign events, the measure of precision).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::finding::Finding;

/// Why a labels file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not JSON: {source}")]
    NotJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: expected an object with an \"attacks\" list, as simulate writes")]
    NoAttacks { path: PathBuf },
}

/// How findings compare with a labels file.
#[derive(Debug, Clone)]
pub struct Scored {
    /// Each labelled attack: its id, its events in a finding at Medium or above, all its
    /// events, and the detections that found it.
    pub attacks: Vec<(String, usize, usize, Vec<String>)>,
    /// Records not labelled as an attack's.
    pub benign_events: usize,
    /// Findings at Medium or above on benign records only, described.
    pub benign_medium: Vec<String>,
    /// Low findings on benign records only.
    pub benign_low: usize,
}

/// Scores `findings`, made from `examined` records, against the labels file at `path`.
pub fn score(path: &Path, findings: &[Finding], examined: usize) -> Result<Scored, ScoreError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScoreError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let labels: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| ScoreError::NotJson {
            path: path.to_path_buf(),
            source,
        })?;
    let Some(attacks) = labels.get("attacks").and_then(|a| a.as_array()) else {
        return Err(ScoreError::NoAttacks {
            path: path.to_path_buf(),
        });
    };
    let mut labelled: HashMap<String, String> = HashMap::new();
    let mut out = Scored {
        attacks: Vec::new(),
        benign_events: 0,
        benign_medium: Vec::new(),
        benign_low: 0,
    };
    for a in attacks {
        let id = a["id"].as_str().unwrap_or("?").to_string();
        for e in a["eventIds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str())
        {
            labelled.insert(e.to_string(), id.clone());
        }
    }
    let serious: Vec<&Finding> = findings.iter().filter(|f| f.severity >= 4.0).collect();
    for a in attacks {
        let id = a["id"].as_str().unwrap_or("?").to_string();
        let events: HashSet<&str> = a["eventIds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str())
            .collect();
        let mut covered = HashSet::new();
        let mut by = Vec::new();
        for f in &serious {
            let hits: Vec<&String> = f
                .event_ids
                .iter()
                .filter(|e| events.contains(e.as_str()))
                .collect();
            if !hits.is_empty() {
                covered.extend(hits);
                if !by.contains(&f.detection) {
                    by.push(f.detection.clone());
                }
            }
        }
        out.attacks.push((id, covered.len(), events.len(), by));
    }
    let attack_events = labelled.len();
    out.benign_events = examined.saturating_sub(attack_events);
    for f in findings {
        if f.event_ids.iter().any(|e| labelled.contains_key(e)) {
            continue;
        }
        if f.severity >= 4.0 {
            out.benign_medium.push(format!(
                "{} ({}, {})",
                f.detection,
                f.severity_label(),
                crate::finding::short_arn(&f.principal.arn)
            ));
        } else {
            out.benign_low += 1;
        }
    }
    Ok(out)
}

impl std::fmt::Display for Scored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let found = self.attacks.iter().filter(|a| a.1 > 0).count();
        let covered: usize = self.attacks.iter().map(|a| a.1).sum();
        let total: usize = self.attacks.iter().map(|a| a.2).sum();
        writeln!(
            f,
            "\nlabels: {found} of {} attacks found at Medium or above; {covered} of {total} attack events are in a finding",
            self.attacks.len()
        )?;
        for (id, c, t, by) in &self.attacks {
            let status = if *c > 0 { "found" } else { "MISSED" };
            writeln!(
                f,
                "  {status:<6} {id}: {c}/{t} events, by {}",
                if by.is_empty() {
                    "-".to_string()
                } else {
                    by.join(", ")
                }
            )?;
        }
        let per_100k =
            self.benign_medium.len() as f64 * 100_000.0 / (self.benign_events.max(1)) as f64;
        writeln!(
            f,
            "benign: {} findings at Medium or above on {} unlabelled events ({per_100k:.2} per 100k); {} Low",
            self.benign_medium.len(),
            self.benign_events,
            self.benign_low
        )?;
        for b in self.benign_medium.iter().take(20) {
            writeln!(f, "  {b}")?;
        }
        Ok(())
    }
}
