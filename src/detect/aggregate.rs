//! From a detection's matching records to findings, as GuardDuty aggregates them: the matches
//! of one group (by default one actor, always within one account) inside one aggregation
//! window are one finding with a count, first and last seen, and every eventID behind it.
//!
//! * Duplicate deliveries (records sharing an `eventID`) count once.
//! * With a threshold, only events inside some `window` holding at least `count` of the
//!   group's events (or distinct values of a field) make a finding; a burst that crosses the
//!   aggregation boundary stays one finding, placed by its first event.
//! * The finding id is a hash of the detection, the account, the group's values and the
//!   window's start: the same logs always give the same ids, however they are split up.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use super::fields::{self, Match};
use super::rule::{placeholders, Rule};
use crate::finding::{iso_time, Finding};

/// Groups `matches` of `rule` into findings, in order of first event time.
pub fn findings(
    rule: &Rule,
    matches: Vec<Match>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Finding> {
    let mut groups: BTreeMap<Vec<String>, Vec<Match>> = BTreeMap::new();
    for m in matches {
        groups.entry(group_of(rule, &m)).or_default().push(m);
    }
    let window = rule.aggregate_window.as_micros() as i64;
    let mut out = Vec::new();
    for (key, mut events) in groups {
        in_order_once(&mut events);
        // Each qualifying event with the start of the aggregation window it belongs to.
        let placed: Vec<(i64, Match)> = match &rule.threshold {
            None => events
                .into_iter()
                .map(|m| (m.time - m.time.rem_euclid(window), m))
                .collect(),
            Some(t) => {
                let span = t.window.as_micros() as i64;
                let values: Vec<String> = events
                    .iter()
                    .map(|m| match &t.distinct {
                        Some(field) => fields::resolve(field, m).unwrap_or_default(),
                        None => m.event_id.clone(),
                    })
                    .collect();
                let times: Vec<i64> = events.iter().map(|m| m.time).collect();
                let keep = match &t.sum {
                    Some(field) => {
                        let weights: Vec<u64> = events
                            .iter()
                            .map(|m| {
                                fields::resolve(field, m)
                                    .and_then(|v| v.trim().parse::<f64>().ok())
                                    .map_or(0, |v| v.max(0.0) as u64)
                            })
                            .collect();
                        qualifying_sum(&times, &weights, span, t.count as u64)
                    }
                    None => qualifying(&times, &values, span, t.count),
                };
                let mut placed = Vec::new();
                let mut burst_start = i64::MIN;
                let mut last = i64::MIN;
                for (m, keep) in events.into_iter().zip(keep) {
                    if !keep {
                        continue;
                    }
                    if last == i64::MIN || m.time - last > span {
                        burst_start = m.time - m.time.rem_euclid(window);
                    }
                    last = m.time;
                    placed.push((burst_start, m));
                }
                placed
            }
        };
        let mut by_window: BTreeMap<i64, Vec<Match>> = BTreeMap::new();
        for (start, m) in placed {
            by_window.entry(start).or_default().push(m);
        }
        for (start, events) in by_window {
            out.push(build(rule, &key, start, events, now));
        }
    }
    out.sort_by(|a, b| {
        a.first_seen
            .cmp(&b.first_seen)
            .then_with(|| a.id.cmp(&b.id))
    });
    out
}

/// A match's group: its account, then the values of the rule's `group_by`.
fn group_of(rule: &Rule, m: &Match) -> Vec<String> {
    let mut key = vec![fields::account(&m.record)];
    key.extend(
        rule.group_by
            .iter()
            .map(|name| fields::resolve(name, m).unwrap_or_default()),
    );
    key
}

/// Most matches carried for one group of a threshold detection.
const MAX_CARRIED: usize = 10_000;

/// The matches of a threshold detection that a later batch's could still join in a window:
/// per group, those within the threshold's window of the group's newest match (at most
/// [`MAX_CARRIED`], the newest), each event once. Empty for a detection without a threshold.
pub fn carried(rule: &Rule, matches: &[Match]) -> Vec<Match> {
    let Some(t) = &rule.threshold else {
        return Vec::new();
    };
    let span = t.window.as_micros() as i64;
    let mut groups: HashMap<Vec<String>, Vec<Match>> = HashMap::new();
    for m in matches {
        groups.entry(group_of(rule, m)).or_default().push(m.clone());
    }
    let mut out = Vec::new();
    for (_, mut events) in groups {
        in_order_once(&mut events);
        let newest = events.last().map_or(i64::MIN, |m| m.time);
        let recent = events.partition_point(|m| newest - m.time >= span);
        let from = recent.max(events.len().saturating_sub(MAX_CARRIED));
        out.extend(events.drain(from..));
    }
    out
}

/// Sorts events by time (then id) and keeps each event once.
fn in_order_once(events: &mut Vec<Match>) {
    events.sort_by(|a, b| {
        a.time
            .cmp(&b.time)
            .then_with(|| a.event_id.cmp(&b.event_id))
    });
    let mut seen = std::collections::HashSet::new();
    events.retain(|m| seen.insert(m.event_id.clone()));
}

/// Marks the events that lie in some window of length `span` holding at least `count`
/// distinct `values` (events sorted by time).
fn qualifying(times: &[i64], values: &[String], span: i64, count: usize) -> Vec<bool> {
    let mut keep = vec![false; times.len()];
    let mut in_window: HashMap<&str, usize> = HashMap::new();
    let mut left = 0;
    let mut marked_to = 0; // keep[..marked_to] already decided true where needed
    for right in 0..times.len() {
        *in_window.entry(values[right].as_str()).or_default() += 1;
        while times[right] - times[left] >= span {
            let v = values[left].as_str();
            let n = in_window.get_mut(v).expect("counted on entry");
            *n -= 1;
            if *n == 0 {
                in_window.remove(v);
            }
            left += 1;
        }
        if in_window.len() >= count {
            for k in keep.iter_mut().take(right + 1).skip(left.max(marked_to)) {
                *k = true;
            }
            marked_to = right + 1;
        }
    }
    keep
}

/// Marks the events that lie in some window of length `span` whose `weights` add up to at
/// least `total` (events sorted by time).
fn qualifying_sum(times: &[i64], weights: &[u64], span: i64, total: u64) -> Vec<bool> {
    let mut keep = vec![false; times.len()];
    let (mut left, mut sum, mut marked_to) = (0, 0u64, 0);
    for right in 0..times.len() {
        sum += weights[right];
        while times[right] - times[left] >= span {
            sum -= weights[left];
            left += 1;
        }
        if sum >= total {
            for k in keep.iter_mut().take(right + 1).skip(left.max(marked_to)) {
                *k = true;
            }
            marked_to = right + 1;
        }
    }
    keep
}

/// A deterministic 32-hex-digit id, like GuardDuty's.
pub fn finding_id(detection: &str, key: &[String], window_start: i64) -> String {
    let mut h = Sha256::new();
    h.update(detection.as_bytes());
    for part in key {
        h.update([0u8]);
        h.update(part.as_bytes());
    }
    h.update([0u8]);
    h.update(window_start.to_string().as_bytes());
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// One finding of `rule` from `events` (sorted, the first describing it) of the group `key`
/// (account first, then the values of `group_by`) in the window starting at `start`.
pub fn build(
    rule: &Rule,
    key: &[String],
    start: i64,
    events: Vec<Match>,
    now: chrono::DateTime<chrono::Utc>,
) -> Finding {
    let first = &events[0];
    let last_seen = events.iter().map(|m| m.time).max().unwrap_or(first.time);
    let mut action = fields::api_call(&first.record);
    for m in &events[1..] {
        if action.affected_resources.len() >= 20 {
            break;
        }
        fields::add_resources(&m.record, &mut action.affected_resources);
    }
    let count = events.len();
    let description = render(&rule.description, first, count, first.time, last_seen);
    let mut group = BTreeMap::new();
    group.insert("account".to_string(), key[0].clone());
    for (name, value) in rule.group_by.iter().zip(&key[1..]) {
        group.insert(name.clone(), value.clone());
    }
    let mut finding = Finding {
        id: finding_id(&rule.id, key, start),
        detection: rule.id.clone(),
        finding_type: rule.finding_type.clone(),
        severity: rule.severity.0,
        title: rule.title.clone(),
        description,
        category: rule.category.clone(),
        mitre: rule.mitre.clone(),
        account: key[0].clone(),
        region: fields::resolve("region", first).unwrap_or_else(|| "us-east-1".into()),
        first_seen: first.time,
        last_seen,
        count,
        event_ids: events.iter().map(|m| m.event_id.clone()).collect(),
        principal: fields::principal(&first.record),
        action,
        group,
        created_at: now,
    };
    finding.bound();
    finding
}

/// Fills a description's `{name}` placeholders from the first event of a finding.
pub fn render(
    template: &str,
    first: &Match,
    count: usize,
    first_seen: i64,
    last_seen: i64,
) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest_at = 0;
    for (at, name) in placeholders(template) {
        out.push_str(&template[rest_at..at]);
        let value = match name.trim() {
            "count" => Some(count.to_string()),
            "first_seen" => Some(iso_time(first_seen)),
            "last_seen" => Some(iso_time(last_seen)),
            other => fields::resolve(other, first),
        };
        out.push_str(value.as_deref().unwrap_or("(none)"));
        rest_at = at + name.len() + 2;
    }
    out.push_str(&template[rest_at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rule::{Origin, Rule};
    use serde_json::json;

    fn rule(extra: &str) -> Rule {
        let text = format!(
            r#"id = "t"
title = "T"
description = "{{actor}} x{{count}}"
type = "Stealth:IAMUser/Test"
severity = 5
category = "c"
sql = "SELECT * FROM cloudtrail"
{extra}"#
        );
        Rule::parse(
            &text,
            Origin {
                path: "t.toml".into(),
                builtin: false,
            },
        )
        .unwrap()
    }

    fn ev(id: &str, minute: i64, ip: &str, who: &str) -> Match {
        Match {
            event_id: id.into(),
            time: 1_767_268_800_000_000 + minute * 60_000_000,
            record: json!({"recipientAccountId": "1", "sourceIPAddress": ip, "userIdentity": {"arn": who}, "eventName": "X"}),
            extra: BTreeMap::new(),
        }
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(0, 0).unwrap()
    }

    #[test]
    fn one_finding_per_actor_and_day_with_duplicates_counted_once() {
        let r = rule("");
        let out = findings(
            &r,
            vec![
                ev("a", 0, "ip", "u1"),
                ev("b", 5, "ip", "u1"),
                ev("a", 0, "ip", "u1"),
                ev("c", 1, "ip", "u2"),
            ],
            now(),
        );
        assert_eq!(out.len(), 2);
        let u1 = out.iter().find(|f| f.principal.arn == "u1").unwrap();
        assert_eq!(u1.count, 2);
        assert_eq!(u1.event_ids, vec!["a", "b"]);
        assert_eq!(u1.description, "u1 x2");
        // A day later is another finding.
        let out = findings(
            &r,
            vec![ev("a", 0, "ip", "u1"), ev("b", 60 * 24, "ip", "u1")],
            now(),
        );
        assert_eq!(out.len(), 2);
        assert_ne!(out[0].id, out[1].id);
    }

    #[test]
    fn ids_do_not_depend_on_input_order() {
        let r = rule("");
        let a = findings(&r, vec![ev("a", 0, "i", "u"), ev("b", 3, "i", "u")], now());
        let b = findings(&r, vec![ev("b", 3, "i", "u"), ev("a", 0, "i", "u")], now());
        assert_eq!(a, b);
    }

    #[test]
    fn thresholds_count_within_the_window() {
        let r = rule("group_by = [\"source_ip\"]\n[threshold]\ncount = 3\nwindow = \"10m\"\n");
        // Three within 10 minutes from one address, two far apart from another.
        let events = vec![
            ev("a", 0, "ip1", "x"),
            ev("b", 4, "ip1", "y"),
            ev("c", 9, "ip1", "z"),
            ev("d", 30, "ip1", "x"),
            ev("e", 0, "ip2", "x"),
            ev("f", 20, "ip2", "x"),
        ];
        let out = findings(&r, events, now());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event_ids, vec!["a", "b", "c"]);
        assert_eq!(out[0].group["source_ip"], "ip1");
        // Exactly at the window's length is outside it.
        let out = findings(
            &r,
            vec![
                ev("a", 0, "ip", "x"),
                ev("b", 5, "ip", "x"),
                ev("c", 10, "ip", "x"),
            ],
            now(),
        );
        assert!(out.is_empty());
    }

    #[test]
    fn distinct_thresholds_count_values() {
        let r = rule("[threshold]\ncount = 3\nwindow = \"1h\"\ndistinct = \"source_ip\"\n");
        let same = vec![
            ev("a", 0, "ip1", "u"),
            ev("b", 1, "ip1", "u"),
            ev("c", 2, "ip1", "u"),
        ];
        assert!(findings(&r, same, now()).is_empty());
        let varied = vec![
            ev("a", 0, "ip1", "u"),
            ev("b", 1, "ip2", "u"),
            ev("c", 2, "ip3", "u"),
        ];
        assert_eq!(findings(&r, varied, now()).len(), 1);
    }

    #[test]
    fn a_burst_across_midnight_is_one_finding() {
        let r = rule("[threshold]\ncount = 3\nwindow = \"10m\"\n");
        let day = 60 * 24;
        let events = vec![
            ev("a", day - 3, "i", "u"),
            ev("b", day - 1, "i", "u"),
            ev("c", day + 2, "i", "u"),
        ];
        let out = findings(&r, events, now());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].count, 3);
    }

    #[test]
    fn sum_thresholds_add_up_a_field_within_the_window() {
        let r = rule("[threshold]\ncount = 1000\nwindow = \"10m\"\nsum = \"tokens\"\n");
        let with = |id: &str, minute: i64, tokens: &str| {
            let mut m = ev(id, minute, "ip", "u");
            m.extra.insert("tokens".into(), tokens.into());
            m
        };
        // 400 + 500 within ten minutes is short of 1,000; 400 + 500 + 300 reaches it.
        let short = vec![
            with("a", 0, "400"),
            with("b", 5, "500"),
            with("c", 20, "900"),
        ];
        assert!(findings(&r, short, now()).is_empty());
        let over = vec![
            with("a", 0, "400"),
            with("b", 5, "500"),
            with("c", 9, "300"),
            with("d", 40, "999"),
        ];
        let out = findings(&r, over, now());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event_ids, vec!["a", "b", "c"]);
    }

    #[test]
    fn a_burst_split_between_batches_is_found_with_the_carried_matches() {
        let r = rule("[threshold]\ncount = 3\nwindow = \"10m\"\n");
        let first = vec![ev("a", 0, "ip", "u"), ev("b", 2, "ip", "u")];
        assert!(findings(&r, first.clone(), now()).is_empty());
        let kept = carried(&r, &first);
        assert_eq!(kept.len(), 2);
        let second = vec![ev("c", 4, "ip", "u")];
        assert!(findings(&r, second.clone(), now()).is_empty());
        let together: Vec<Match> = second.into_iter().chain(kept).collect();
        let out = findings(&r, together, now());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event_ids, vec!["a", "b", "c"]);
        // Only what a later match could still join is carried, per group, each event once.
        let kept = carried(
            &r,
            &[
                ev("a", 0, "ip", "u"),
                ev("z", 30, "ip", "u"),
                ev("z", 30, "ip", "u"),
                ev("y", 0, "ip", "v"),
            ],
        );
        let mut ids: Vec<&str> = kept.iter().map(|m| m.event_id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, vec!["y", "z"]);
        // A detection without a threshold carries nothing.
        assert!(carried(&rule(""), &[ev("a", 0, "ip", "u")]).is_empty());
    }
}
