//! Detection: rules written as data (`detections/*.toml`), run as SQL over the `cloudtrail`
//! table, their matches aggregated into findings.
//!
//! * [`rule`]: one detection file, parsed and checked.
//! * [`engine`]: plans every rule once and runs them over chunks of batches.
//! * [`fields`]: the names a rule's description and grouping may use.
//! * [`aggregate`]: matches → findings (groups, thresholds, windows, deterministic ids).
//! * [`examine`]: the one pipeline from a chunk of decoded batches to findings (every
//!   detection, the statistics, aggregation, claiming), shared by replay, the daemon, `bench`
//!   and `rules test`.
//! * [`coverage`]: the ATT&CK and attack-simulation techniques the pack finds.
//! * [`ip_list`]: the threat list and trusted ranges the user brings.
//! * [`ruletest`]: the tests each detection file carries.
//! * [`stats`]: statistical detections (first-seen, rates, sequences) and [`state`], what
//!   they learn and keep between runs.
//!
//! The built-in pack is compiled into the binary; [`load`] adds a user's own directories.

pub mod aggregate;
pub mod coverage;
pub mod engine;
pub mod examine;
pub mod fields;
pub mod filter;
pub mod ip_list;
pub mod rule;
pub mod ruletest;
pub mod state;
pub mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use engine::{Engine, EngineOptions, Output, RunError};
pub use examine::{Chunk, Delivery, ExamineOptions, Examined, Examiner};
pub use fields::Match;
pub use rule::{Origin, Rule, RuleError, Severity};

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_detections.rs"));
}

/// The built-in detection files: (path, text).
pub fn builtin_files() -> &'static [(&'static str, &'static str)] {
    builtin::BUILTIN
}

/// Which detections to load.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    /// Directories (walked for `*.toml`) or files of the user's own detections. A user's
    /// detection with a built-in's id replaces it.
    pub dirs: Vec<PathBuf>,
    /// Leave the built-in pack out.
    pub no_builtin: bool,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    Ok(())
}

/// Loads the built-in pack and the user's detections. Every problem is returned, each with
/// its file and line, not just the first.
pub fn load(options: &PackOptions) -> Result<Vec<Rule>, Vec<RuleError>> {
    let mut errors = Vec::new();
    let mut rules: BTreeMap<String, Rule> = BTreeMap::new();
    if !options.no_builtin {
        for (path, text) in builtin_files() {
            let origin = Origin {
                path: PathBuf::from(path),
                builtin: true,
            };
            match Rule::parse(text, origin) {
                Ok(rule) => {
                    if let Some(previous) = rules.insert(rule.id.clone(), rule) {
                        errors.push(RuleError {
                            path: path.to_string(),
                            line: None,
                            message: format!(
                                "id {} is also used by {}",
                                previous.id, previous.origin
                            ),
                        });
                    }
                }
                Err(e) => errors.push(e),
            }
        }
    }
    let mut user_ids: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in &options.dirs {
        let mut files = Vec::new();
        if let Err(e) = walk(dir, &mut files) {
            errors.push(RuleError {
                path: dir.display().to_string(),
                line: None,
                message: format!("cannot read the detections: {e}"),
            });
            continue;
        }
        files.sort();
        for file in files {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(RuleError {
                        path: file.display().to_string(),
                        line: None,
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            let origin = Origin {
                path: file.clone(),
                builtin: false,
            };
            match Rule::parse(&text, origin) {
                Ok(rule) => {
                    if let Some(other) = user_ids.insert(rule.id.clone(), file.clone()) {
                        errors.push(RuleError {
                            path: file.display().to_string(),
                            line: None,
                            message: format!("id {} is also used by {}", rule.id, other.display()),
                        });
                        continue;
                    }
                    rules.insert(rule.id.clone(), rule);
                }
                Err(e) => errors.push(e),
            }
        }
    }
    // A sequence whose step names no detection would never fire: say so now.
    for rule in rules.values() {
        if let Some(rule::Stateful::Sequence(s)) = &rule.stateful {
            for step in s.steps.iter().flat_map(|s| s.split('|')).map(str::trim) {
                if !rules.contains_key(step) {
                    errors.push(RuleError {
                        path: rule.origin.to_string(),
                        line: None,
                        message: format!(
                            "sequence step {step:?} is not the id of a loaded detection"
                        ),
                    });
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(rules.into_values().collect())
    } else {
        Err(errors)
    }
}

/// Several rule errors as one message, one per line.
pub fn describe_errors(errors: &[RuleError]) -> String {
    let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
    format!(
        "{} detection{} could not be loaded:\n{}",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" },
        lines.join("\n")
    )
}
