//! The daemon's counters, served as Prometheus text on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// What each metric means, for `# HELP` and `# TYPE`.
const METRICS: &[(&str, &str, &str)] = &[
    (
        "trailhound_messages_received_total",
        "counter",
        "SQS messages received",
    ),
    (
        "trailhound_messages_deleted_total",
        "counter",
        "SQS messages deleted after their findings were out (or as never processable)",
    ),
    (
        "trailhound_messages_ignored_total",
        "counter",
        "Messages naming no object to read, by kind (test events, validation messages)",
    ),
    (
        "trailhound_messages_kept_total",
        "counter",
        "Messages left on the queue for redelivery, by reason",
    ),
    (
        "trailhound_objects_total",
        "counter",
        "Objects named by notifications, by kind and outcome",
    ),
    (
        "trailhound_records_total",
        "counter",
        "CloudTrail records decoded",
    ),
    (
        "trailhound_bytes_total",
        "counter",
        "Bytes read, as stored (compressed)",
    ),
    (
        "trailhound_findings_total",
        "counter",
        "Findings sent to the sinks, by severity",
    ),
    ("trailhound_errors_total", "counter", "Errors, by kind"),
    (
        "trailhound_batches_total",
        "counter",
        "Batches of messages examined",
    ),
    (
        "trailhound_event_lag_seconds",
        "gauge",
        "Age of the newest record of the last batch when its findings were out",
    ),
    (
        "trailhound_notification_lag_seconds",
        "gauge",
        "Time from the oldest message of the last batch being sent to its findings being out",
    ),
    (
        "trailhound_batch_seconds_total",
        "counter",
        "Time spent examining batches",
    ),
    (
        "trailhound_events_per_second",
        "gauge",
        "Records per second of the last batch, fetch to findings out",
    ),
    (
        "trailhound_visibility_extended_total",
        "counter",
        "Heartbeats: visibility timeouts renewed for messages in work",
    ),
    (
        "trailhound_in_flight_messages",
        "gauge",
        "Messages received and not yet deleted or released",
    ),
];

/// Counters and gauges by name and labels.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(&'static str, String), f64>>,
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Metrics {
    /// Adds `by` to a counter.
    pub fn add(&self, name: &'static str, pairs: &[(&str, &str)], by: f64) {
        let mut s = self.series.lock().unwrap_or_else(|e| e.into_inner());
        *s.entry((name, labels(pairs))).or_default() += by;
    }

    pub fn inc(&self, name: &'static str, pairs: &[(&str, &str)]) {
        self.add(name, pairs, 1.0);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, pairs: &[(&str, &str)], value: f64) {
        let mut s = self.series.lock().unwrap_or_else(|e| e.into_inner());
        s.insert((name, labels(pairs)), value);
    }

    /// A counter's value (0 when never set).
    pub fn get(&self, name: &str, pairs: &[(&str, &str)]) -> f64 {
        let s = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let l = labels(pairs);
        s.iter()
            .find(|((n, ls), _)| *n == name && *ls == l)
            .map_or(0.0, |(_, v)| *v)
    }

    /// Prometheus's text exposition format.
    pub fn render(&self) -> String {
        let s = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (name, kind, help) in METRICS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            let mut any = false;
            for ((n, l), v) in s.iter() {
                if n == name {
                    any = true;
                    let _ = writeln!(out, "{n}{l} {v}");
                }
            }
            if !any && *kind == "counter" && !help.contains(", by ") {
                let _ = writeln!(out, "{name} 0");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_render_with_labels_escaped() {
        let m = Metrics::default();
        m.inc("trailhound_errors_total", &[("kind", "corrupt-gzip")]);
        m.add("trailhound_errors_total", &[("kind", "corrupt-gzip")], 2.0);
        m.inc(
            "trailhound_objects_total",
            &[("kind", "a \"b\""), ("outcome", "read")],
        );
        m.set("trailhound_event_lag_seconds", &[], 4.5);
        let text = m.render();
        assert!(
            text.contains("trailhound_errors_total{kind=\"corrupt-gzip\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("trailhound_objects_total{kind=\"a \\\"b\\\"\",outcome=\"read\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("trailhound_event_lag_seconds 4.5\n"),
            "{text}"
        );
        assert!(text.contains("trailhound_records_total 0\n"), "{text}");
        assert!(
            text.contains("# TYPE trailhound_findings_total counter\n"),
            "{text}"
        );
        assert_eq!(
            m.get("trailhound_errors_total", &[("kind", "corrupt-gzip")]),
            3.0
        );
    }
}
