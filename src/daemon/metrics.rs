//! The daemon's counters and gauges, served as Prometheus text on `/metrics`. Each is a
//! [`Metric`], declared once with its name, type and help: a misspelt metric does not compile.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// A counter only goes up; a gauge is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

macro_rules! metrics {
    ($($variant:ident => $name:literal, $kind:ident, $labelled:literal, $help:literal;)*) => {
        /// Every metric the daemon serves.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Metric {
            $(#[doc = $help] $variant,)*
        }

        impl Metric {
            /// Every metric, in the order `/metrics` lists them.
            pub const ALL: &'static [Metric] = &[$(Metric::$variant,)*];

            /// Its name in the exposition format.
            pub fn name(self) -> &'static str {
                match self { $(Metric::$variant => $name,)* }
            }

            pub fn kind(self) -> Kind {
                match self { $(Metric::$variant => Kind::$kind,)* }
            }

            /// True when its series carry labels (so it has no unlabelled zero series).
            pub fn labelled(self) -> bool {
                match self { $(Metric::$variant => $labelled,)* }
            }

            /// What it means, for `# HELP`.
            pub fn help(self) -> &'static str {
                match self { $(Metric::$variant => $help,)* }
            }
        }
    };
}

metrics! {
    MessagesReceived => "trailhound_messages_received_total", Counter, false,
        "SQS messages received";
    MessagesDeleted => "trailhound_messages_deleted_total", Counter, false,
        "SQS messages deleted after their findings were out (or as never processable)";
    MessagesIgnored => "trailhound_messages_ignored_total", Counter, true,
        "Messages naming no object to read, by kind (test events, validation messages)";
    MessagesKept => "trailhound_messages_kept_total", Counter, true,
        "Messages left on the queue for redelivery, by reason";
    Objects => "trailhound_objects_total", Counter, true,
        "Objects named by notifications, by kind and outcome";
    LakeFiles => "trailhound_lake_files_total", Counter, false,
        "Parquet files written to the lake (run --lake)";
    Records => "trailhound_records_total", Counter, false,
        "CloudTrail records decoded";
    Bytes => "trailhound_bytes_total", Counter, false,
        "Bytes read, as stored (compressed)";
    Findings => "trailhound_findings_total", Counter, true,
        "Findings sent to the sinks, by severity";
    FindingsRefused => "trailhound_findings_refused_total", Counter, true,
        "Findings a sink refused for something in the finding itself (logged in full), by sink";
    Errors => "trailhound_errors_total", Counter, true,
        "Errors, by kind";
    Batches => "trailhound_batches_total", Counter, false,
        "Batches of messages examined";
    EventLag => "trailhound_event_lag_seconds", Gauge, false,
        "Age of the newest record of the last batch when its findings were out";
    NotificationLag => "trailhound_notification_lag_seconds", Gauge, false,
        "Time from the oldest message of the last batch being sent to its findings being out";
    BatchSeconds => "trailhound_batch_seconds_total", Counter, false,
        "Time spent examining batches";
    EventsPerSecond => "trailhound_events_per_second", Gauge, false,
        "Records per second of the last batch, fetch to findings out";
    VisibilityExtended => "trailhound_visibility_extended_total", Counter, false,
        "Heartbeats: visibility timeouts renewed for messages in work";
    InFlightMessages => "trailhound_in_flight_messages", Gauge, false,
        "Messages received and not yet deleted or released";
}

/// Counters and gauges by metric and labels.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(Metric, String), f64>>,
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
    pub fn add(&self, metric: Metric, pairs: &[(&str, &str)], by: f64) {
        let mut s = crate::sync::lock(&self.series);
        *s.entry((metric, labels(pairs))).or_default() += by;
    }

    pub fn inc(&self, metric: Metric, pairs: &[(&str, &str)]) {
        self.add(metric, pairs, 1.0);
    }

    /// Sets a gauge.
    pub fn set(&self, metric: Metric, pairs: &[(&str, &str)], value: f64) {
        let mut s = crate::sync::lock(&self.series);
        s.insert((metric, labels(pairs)), value);
    }

    /// A series' value (0 when never set).
    pub fn get(&self, metric: Metric, pairs: &[(&str, &str)]) -> f64 {
        let s = crate::sync::lock(&self.series);
        s.get(&(metric, labels(pairs))).copied().unwrap_or(0.0)
    }

    /// Prometheus's text exposition format.
    pub fn render(&self) -> String {
        let s = crate::sync::lock(&self.series);
        let mut out = String::new();
        for &metric in Metric::ALL {
            let name = metric.name();
            let kind = match metric.kind() {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {kind}", metric.help());
            let mut any = false;
            for ((m, l), v) in s.range((metric, String::new())..) {
                if *m != metric {
                    break;
                }
                any = true;
                let _ = writeln!(out, "{name}{l} {v}");
            }
            if !any && metric.kind() == Kind::Counter && !metric.labelled() {
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
        m.inc(Metric::Errors, &[("kind", "corrupt-gzip")]);
        m.add(Metric::Errors, &[("kind", "corrupt-gzip")], 2.0);
        m.inc(Metric::Objects, &[("kind", "a \"b\""), ("outcome", "read")]);
        m.set(Metric::EventLag, &[], 4.5);
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
        assert!(!text.contains("trailhound_findings_total 0\n"), "{text}");
        assert!(
            text.contains("# TYPE trailhound_findings_total counter\n"),
            "{text}"
        );
        assert_eq!(m.get(Metric::Errors, &[("kind", "corrupt-gzip")]), 3.0);
    }

    #[test]
    fn every_metric_has_a_distinct_prometheus_name() {
        let names: std::collections::BTreeSet<&str> =
            Metric::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), Metric::ALL.len());
        for name in names {
            assert!(name.starts_with("trailhound_"), "{name}");
        }
    }
}
