//! `trailhound state show|export|reset`: what statistical detections have learned.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::detect::state::{self, parts, State, Store};
use crate::finding::iso_time;

#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, Args)]
pub struct StorePath {
    /// The state: a file, or dynamodb://TABLE for a state shared by a fleet [default:
    /// state.redb in trailhound's data directory].
    #[arg(long, value_name = "PATH", env = "TRAILHOUND_STATE")]
    pub state: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Summarise the state, or show everything learned about one principal, key, account or
    /// value (entries whose key contains TEXT): first and last sightings, counts per bucket,
    /// sequence steps. This is how to see why something was "new".
    ///
    /// Examples:
    ///
    ///   trailhound state show
    ///
    ///   trailhound state show arn:aws:iam::111122223333:role/chat-api
    ///
    ///   trailhound state show AKIAIOSFODNN7EXAMPLE
    #[command(verbatim_doc_comment)]
    Show {
        /// Text to look for in entries' keys (a principal ARN, an access key id, an account).
        text: Option<String>,
        #[command(flatten)]
        store: StorePath,
        /// Entries shown per table, at most.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Write the state (or the entries whose key contains TEXT) as one JSON document.
    Export {
        text: Option<String>,
        #[command(flatten)]
        store: StorePath,
    },
    /// Forget what was learned: everything, or the entries whose key contains --matching.
    /// Detections then learn again (an account's learning period starts over when it is
    /// forgotten).
    Reset {
        /// Forget only entries whose key contains this text.
        #[arg(long, value_name = "TEXT")]
        matching: Option<String>,
        /// Needed: reset cannot be undone.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        store: StorePath,
    },
}

fn open(store: &StorePath) -> anyhow::Result<(Store, State, PathBuf)> {
    let path = store.state.clone().unwrap_or_else(state::default_path);
    let special =
        path.as_os_str() == ":memory:" || path.to_string_lossy().starts_with("dynamodb://");
    if !special && !path.exists() {
        bail!(
            "no state at {} (replay with statistical detections creates it; --state names another)",
            path.display()
        );
    }
    let opened = Store::open(&path)?;
    let loaded = opened.load()?;
    Ok((opened, loaded, path))
}

fn total(state: &State) -> usize {
    state.sizes().iter().map(|(_, n)| n).sum()
}

pub fn run(args: StateArgs) -> anyhow::Result<i32> {
    match args.command {
        StateCommand::Show { text, store, limit } => {
            let (opened, state, _) = open(&store)?;
            print!(
                "{}",
                show(&state, text.as_deref(), limit, opened.file_size())
            );
            Ok(0)
        }
        StateCommand::Export { text, store } => {
            let (_, state, _) = open(&store)?;
            serde_json::to_writer_pretty(
                std::io::stdout().lock(),
                &state.to_json(text.as_deref()),
            )?;
            println!();
            Ok(0)
        }
        StateCommand::Reset {
            matching,
            yes,
            store,
        } => {
            let (mut opened, mut state, path) = open(&store)?;
            let before = total(&state);
            if !yes {
                bail!(
                    "this forgets {} of the {before} entries in {}; run again with --yes",
                    matching
                        .as_deref()
                        .map_or("all".to_string(), |m| format!("the entries matching {m:?}")),
                    path.display()
                );
            }
            match &matching {
                None => {
                    state.clear();
                    opened.forget_claims()?;
                }
                Some(m) => forget(&mut state, m),
            }
            opened.save(&mut state)?;
            opened.compact()?;
            eprintln!(
                "forgot {} entries of {before} in {}",
                before - total(&state),
                path.display()
            );
            Ok(0)
        }
    }
}

fn forget(state: &mut State, text: &str) {
    state.accounts.retain(|k, _| !k.contains(text));
    state.entities.retain(|k, _| !k.contains(text));
    state.values.retain(|k, _| !k.contains(text));
    state.rates.retain(|k, _| !k.contains(text));
    state.steps.retain(|k, _| !k.contains(text));
    state.sequences.retain(|k, _| !k.contains(text));
}

fn time(t: i64) -> String {
    iso_time(t)[..19].replace('T', " ")
}

/// The human view of a state.
pub fn show(state: &State, text: Option<&str>, limit: usize, file_size: u64) -> String {
    let mut out = String::new();
    let matches = |k: &str| text.is_none_or(|t| k.contains(t));
    if text.is_none() {
        out.push_str(&format!(
            "state: {} entries, {:.1} MiB on disk, learned up to {}\n",
            total(state),
            file_size as f64 / (1 << 20) as f64,
            if state.horizon == i64::MIN {
                "(nothing yet)".to_string()
            } else {
                time(state.horizon)
            }
        ));
        for (table, n) in state.sizes() {
            out.push_str(&format!("  {table:<10} {n:>9}\n"));
        }
    }
    let mut accounts: Vec<(&String, &i64)> =
        state.accounts.iter().filter(|(k, _)| matches(k)).collect();
    accounts.sort();
    if !accounts.is_empty() {
        out.push_str("\naccounts (first record seen):\n");
        for (a, t) in accounts.iter().take(limit) {
            out.push_str(&format!("  {a}  {}\n", time(**t)));
        }
    }
    if text.is_none() {
        out.push_str(
            "\n(give a principal ARN, access key id or account to see what was learned about it)\n",
        );
        return out;
    }
    let mut entities: Vec<_> = state.entities.iter().filter(|(k, _)| matches(k)).collect();
    entities.sort_by(|a, b| a.0.cmp(b.0));
    if !entities.is_empty() {
        out.push_str("\nentities (account | entity: first seen, last seen, sightings):\n");
        for (k, s) in entities.iter().take(limit) {
            let p = parts(k);
            out.push_str(&format!(
                "  {}: {} .. {}  ({})\n",
                p.join(" | "),
                time(s.first),
                time(s.last),
                s.count
            ));
        }
    }
    let mut values: Vec<_> = state.values.iter().filter(|(k, _)| matches(k)).collect();
    values.sort_by(|a, b| a.0.cmp(b.0));
    if !values.is_empty() {
        out.push_str("\nfirst-seen values (detection | account | entity | value: first seen, last seen, sightings):\n");
        for (k, s) in values.iter().take(limit) {
            out.push_str(&format!(
                "  {}: {} .. {}  ({})\n",
                parts(k).join(" | "),
                time(s.first),
                time(s.last),
                s.count
            ));
        }
        if values.len() > limit {
            out.push_str(&format!(
                "  … {} more (--limit, or state export)\n",
                values.len() - limit
            ));
        }
    }
    let mut rates: Vec<_> = state.rates.iter().filter(|(k, _)| matches(k)).collect();
    rates.sort_by(|a, b| a.0.cmp(b.0));
    if !rates.is_empty() {
        out.push_str(
            "\nrates (detection | account | entity: busiest buckets, buckets that fired):\n",
        );
        for (k, h) in rates.iter().take(limit) {
            let mut busiest: Vec<(&i64, &u64)> = h.buckets.iter().collect();
            busiest.sort_by(|a, b| b.1.cmp(a.1).then(b.0.cmp(a.0)));
            let shown: Vec<String> = busiest
                .iter()
                .take(5)
                .map(|(b, n)| format!("{} {n}", time(**b)))
                .collect();
            let fired: Vec<String> = h.fired.iter().map(|b| time(*b)).collect();
            out.push_str(&format!(
                "  {}: since {}, {} buckets counted; busiest {}; fired {}\n",
                parts(k).join(" | "),
                time(h.first),
                h.buckets.len(),
                shown.join(", "),
                if fired.is_empty() {
                    "never".to_string()
                } else {
                    fired.join(", ")
                }
            ));
        }
    }
    let mut steps: Vec<_> = state.steps.iter().filter(|(k, _)| matches(k)).collect();
    steps.sort_by(|a, b| a.0.cmp(b.0));
    if !steps.is_empty() {
        out.push_str("\nsequence steps (account | join | key: detection at time):\n");
        for (k, list) in steps.iter().take(limit) {
            let shown: Vec<String> = list
                .iter()
                .map(|s| format!("{} {}", s.detection, time(s.time)))
                .collect();
            out.push_str(&format!(
                "  {}: {}\n",
                parts(k).join(" | "),
                shown.join("; ")
            ));
        }
    }
    if out.is_empty() {
        out.push_str(&format!(
            "nothing learned matches {:?}\n",
            text.unwrap_or_default()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::state::{key, Seen};

    #[test]
    fn show_explains_what_was_first_seen_for_an_entity() {
        let mut s = State::default();
        let role = "arn:aws:iam::111122223333:role/app";
        s.accounts.insert("111122223333".into(), 0);
        s.values.insert(
            key(&["principal-new-model", "111122223333", role, "model-a"]),
            Seen {
                first: 0,
                last: 86_400_000_000,
                count: 40,
            },
        );
        s.values.insert(
            key(&["principal-new-model", "111122223333", "other", "model-b"]),
            Seen::new(0),
        );
        let text = show(&s, Some(role), 10, 0);
        assert!(text.contains("principal-new-model | 111122223333 | arn:aws:iam::111122223333:role/app | model-a: 1970-01-01 00:00:00 .. 1970-01-02 00:00:00  (40)"), "{text}");
        assert!(!text.contains("model-b"), "{text}");
        assert!(show(&s, Some("nobody"), 10, 0).starts_with("nothing learned"));
    }

    #[test]
    fn forgetting_by_text_keeps_the_rest() {
        let mut s = State::default();
        s.values
            .insert(key(&["d", "1", "alice", "x"]), Seen::new(0));
        s.values.insert(key(&["d", "1", "bob", "x"]), Seen::new(0));
        forget(&mut s, "alice");
        assert_eq!(s.values.len(), 1);
        assert!(s.values.get(&key(&["d", "1", "bob", "x"])).is_some());
    }
}
