//! Address lists the user brings, as GuardDuty takes them: a threat list (`--threat-list`:
//! any call from a listed address is a finding, `threat_listed(sourceipaddress)`) and trusted
//! ranges (`--trusted-ips`: the detections whose signal is where a call came from leave them
//! out, `trusted_ip(sourceipaddress)`).
//!
//! A list file is either plain text, one IPv4 or IPv6 address or CIDR network a line (blank
//! lines and `#` comments allowed), or a STIX 2.1 document (a bundle, one object or an array
//! of objects): `indicator` objects whose pattern compares `ipv4-addr:value` or
//! `ipv6-addr:value` with `=` (each comparison of a pattern counts; revoked indicators and
//! patterns of other languages are skipped), and `ipv4-addr` / `ipv6-addr` objects by their
//! `value`. Indicators about anything else (domains, files) are skipped and counted.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde_json::Value;

/// Networks, looked up by address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct IpList {
    /// The networks by prefix length (IPv4 and IPv6 together; a network knows its family).
    by_prefix: BTreeMap<u8, BTreeSet<IpNet>>,
}

/// What loading a list file gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Networks added.
    pub networks: usize,
    /// STIX indicators skipped: revoked, in another pattern language, or about no address.
    pub skipped: usize,
    /// "plain" or "STIX 2.1".
    pub form: &'static str,
}

/// Why a list file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IpListError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {text:?} is not an IP address or CIDR network")]
    BadLine {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("{path}: not STIX 2.1 JSON: {why}")]
    BadStix { path: PathBuf, why: String },
    #[error("{path}: indicator {id}: {value:?} is not an IP address or CIDR network")]
    BadStixValue {
        path: PathBuf,
        id: String,
        value: String,
    },
    #[error("{path}: holds no addresses (an empty list would change nothing)")]
    Empty { path: PathBuf },
}

impl IpList {
    /// Adds a network (its host bits cleared) or, as a /32 or /128, an address.
    pub fn insert(&mut self, net: IpNet) {
        let net = canonical_net(net);
        self.by_prefix
            .entry(net.prefix_len())
            .or_default()
            .insert(net);
    }

    /// True when `addr` is in one of the networks.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.by_prefix
            .iter()
            .any(|(&len, nets)| IpNet::new(addr, len).is_ok_and(|net| nets.contains(&net.trunc())))
    }

    /// True when `text` is an address in one of the networks (false for anything else, such
    /// as a service's name or `AWS Internal`).
    pub fn contains_text(&self, text: &str) -> bool {
        !self.is_empty()
            && text
                .trim()
                .parse::<IpAddr>()
                .is_ok_and(|addr| self.contains(addr))
    }

    /// Networks held.
    pub fn len(&self) -> usize {
        self.by_prefix.values().map(BTreeSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }

    /// Adds the networks of the file at `path`, plain or STIX 2.1 by its first character.
    pub fn load(&mut self, path: &Path) -> Result<Loaded, IpListError> {
        let text = std::fs::read_to_string(path).map_err(|source| IpListError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let loaded = self.add_text(path, &text)?;
        if loaded.networks == 0 {
            return Err(IpListError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(loaded)
    }

    /// Adds the networks of a list's text (`path` names it in errors).
    pub fn add_text(&mut self, path: &Path, text: &str) -> Result<Loaded, IpListError> {
        let body = text.trim_start_matches('\u{feff}').trim_start();
        if body.starts_with('{') || body.starts_with('[') {
            self.add_stix(path, body)
        } else {
            self.add_plain(path, text)
        }
    }

    fn add_plain(&mut self, path: &Path, text: &str) -> Result<Loaded, IpListError> {
        let mut loaded = Loaded {
            form: "plain",
            ..Default::default()
        };
        for (i, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or_default().trim();
            let entry = entry.trim_start_matches('\u{feff}');
            if entry.is_empty() {
                continue;
            }
            let net = parse_net(entry).ok_or_else(|| IpListError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
                text: entry.chars().take(100).collect(),
            })?;
            self.insert(net);
            loaded.networks += 1;
        }
        Ok(loaded)
    }

    fn add_stix(&mut self, path: &Path, text: &str) -> Result<Loaded, IpListError> {
        let bad = |why: String| IpListError::BadStix {
            path: path.to_path_buf(),
            why,
        };
        let doc: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let objects: Vec<&Value> = match &doc {
            Value::Array(items) => items.iter().collect(),
            Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("bundle") => o
                .get("objects")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("a bundle without an \"objects\" array".into()))?
                .iter()
                .collect(),
            Value::Object(_) => vec![&doc],
            _ => return Err(bad("neither an object nor an array".into())),
        };
        let mut loaded = Loaded {
            form: "STIX 2.1",
            ..Default::default()
        };
        for object in objects {
            let kind = object.get("type").and_then(Value::as_str).unwrap_or("");
            let id = object
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("(no id)")
                .to_string();
            let values: Vec<String> = match kind {
                "indicator" => {
                    let revoked = object.get("revoked").and_then(Value::as_bool) == Some(true);
                    let language = object
                        .get("pattern_type")
                        .and_then(Value::as_str)
                        .unwrap_or("stix");
                    let pattern = object.get("pattern").and_then(Value::as_str).unwrap_or("");
                    let values = if revoked || language != "stix" {
                        Vec::new()
                    } else {
                        address_comparisons(pattern)
                    };
                    if values.is_empty() {
                        loaded.skipped += 1;
                    }
                    values
                }
                "ipv4-addr" | "ipv6-addr" => object
                    .get("value")
                    .and_then(Value::as_str)
                    .map(|v| vec![v.to_string()])
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            for value in values {
                let net = parse_net(&value).ok_or_else(|| IpListError::BadStixValue {
                    path: path.to_path_buf(),
                    id: id.clone(),
                    value: value.chars().take(100).collect(),
                })?;
                self.insert(net);
                loaded.networks += 1;
            }
        }
        Ok(loaded)
    }
}

/// The values a STIX pattern compares `ipv4-addr:value` or `ipv6-addr:value` with `=`, in
/// order (`[ipv4-addr:value = '198.51.100.1/32' OR ipv4-addr:value = '203.0.113.0/24']`).
fn address_comparisons(pattern: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut rest = pattern;
    while let Some(at) = ["ipv4-addr:value", "ipv6-addr:value"]
        .iter()
        .filter_map(|p| rest.find(p).map(|i| (i, p.len())))
        .min()
    {
        rest = rest[at.0 + at.1..].trim_start();
        let Some(after) = rest.strip_prefix('=') else {
            continue;
        };
        let Some(quoted) = after.trim_start().strip_prefix('\'') else {
            continue;
        };
        let Some(end) = quoted.find('\'') else { break };
        values.push(quoted[..end].trim().to_string());
        rest = &quoted[end + 1..];
    }
    values
}

/// An address or CIDR network; an address is a /32 or /128.
fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// IPv4-mapped IPv6 addresses as IPv4, so that either form of one address matches.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).map_or(net, |n| n.trunc()),
            None => net.trunc(),
        },
        _ => net.trunc(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> IpList {
        let mut l = IpList::default();
        l.add_text(Path::new("t"), text).unwrap();
        l
    }

    #[test]
    fn plain_lists_take_addresses_and_networks_with_comments() {
        let l = list("# bad hosts\n198.51.100.7\n\n203.0.113.0/24  # a whole range\n2001:db8:bad::/48\n10.1.2.3/8\n");
        assert_eq!(l.len(), 4);
        for hit in [
            "198.51.100.7",
            "203.0.113.200",
            "2001:db8:bad:1::9",
            "10.200.0.1",
            "::ffff:203.0.113.5",
        ] {
            assert!(l.contains_text(hit), "{hit}");
        }
        for miss in [
            "198.51.100.8",
            "203.0.114.1",
            "2001:db8:bae::1",
            "AWS Internal",
            "ec2.amazonaws.com",
            "",
        ] {
            assert!(!l.contains_text(miss), "{miss}");
        }
    }

    #[test]
    fn a_bad_line_is_named_with_its_number() {
        let e = IpList::default()
            .add_text(Path::new("list.txt"), "198.51.100.7\nevil.example.com\n")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "list.txt:2: \"evil.example.com\" is not an IP address or CIDR network"
        );
    }

    #[test]
    fn stix_indicators_and_address_objects_are_read() {
        let bundle = r#"{"type": "bundle", "id": "bundle--1", "objects": [
          {"type": "indicator", "spec_version": "2.1", "id": "indicator--a", "pattern_type": "stix",
           "pattern": "[ipv4-addr:value = '198.51.100.7/32' OR ipv4-addr:value = '203.0.113.0/24']"},
          {"type": "indicator", "spec_version": "2.1", "id": "indicator--b", "pattern_type": "stix",
           "pattern": "[ipv6-addr:value='2001:db8:bad::1']"},
          {"type": "indicator", "spec_version": "2.1", "id": "indicator--c", "pattern_type": "stix",
           "pattern": "[domain-name:value = 'evil.example.com']"},
          {"type": "indicator", "spec_version": "2.1", "id": "indicator--d", "pattern_type": "stix",
           "revoked": true, "pattern": "[ipv4-addr:value = '192.0.2.1']"},
          {"type": "indicator", "spec_version": "2.1", "id": "indicator--e", "pattern_type": "snort",
           "pattern": "alert ip 192.0.2.2 any"},
          {"type": "ipv4-addr", "spec_version": "2.1", "id": "ipv4-addr--f", "value": "192.0.2.77"}
        ]}"#;
        let mut l = IpList::default();
        let loaded = l.add_text(Path::new("b.json"), bundle).unwrap();
        assert_eq!(
            loaded,
            Loaded {
                networks: 4,
                skipped: 3,
                form: "STIX 2.1"
            }
        );
        for hit in [
            "198.51.100.7",
            "203.0.113.9",
            "2001:db8:bad::1",
            "192.0.2.77",
        ] {
            assert!(l.contains_text(hit), "{hit}");
        }
        for miss in ["192.0.2.1", "192.0.2.2", "198.51.100.8"] {
            assert!(!l.contains_text(miss), "{miss}");
        }
        let e = IpList::default()
            .add_text(
                Path::new("b.json"),
                r#"{"type": "indicator", "id": "indicator--x", "pattern": "[ipv4-addr:value = 'nope']"}"#,
            )
            .unwrap_err();
        assert!(e.to_string().contains("indicator--x"), "{e}");
        assert!(IpList::default()
            .add_text(Path::new("b.json"), "{not json")
            .is_err());
    }

    #[test]
    fn an_empty_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.txt");
        std::fs::write(&path, "# nothing yet\n").unwrap();
        assert!(matches!(
            IpList::default().load(&path),
            Err(IpListError::Empty { .. })
        ));
    }
}
