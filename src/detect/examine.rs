//! Where decoded records meet the detections and become findings: the one examination
//! pipeline that `replay`, the daemon, `bench` and `rules test` share.
//!
//! An [`Examiner`] owns the planned pack, the statistical detectors and the state they learn
//! in. For each [`Chunk`] of decoded batches (CloudTrail and Bedrock invocation logs) it:
//!
//! 1. notes the chunk's objects for the statistics (records learned from before are not
//!    learned again);
//! 2. runs every detection over the chunk;
//! 3. splits what came back: plain detections' matches, statistical detections'
//!    observations, and detections that failed (the others' work is kept);
//! 4. puts the observations through the statistical detectors;
//! 5. aggregates matches into findings, leaves out those below the minimum severity and, in a
//!    state shared by a fleet, claims the statistical ones (each is emitted by one process).
//!
//! When findings come out is the [`Delivery`]: replay wants every finding once, at the end,
//! built from all of its records; the daemon wants each chunk's findings as soon as the chunk
//! is examined, and again, updated, when a later chunk adds records to one (threshold
//! detections carry their recent matches from chunk to chunk for that). Either way a finding
//! ends up with the same records whatever the chunking.
//!
//! What a chunk taught is kept by [`Examiner::commit`], once its findings are safely out, or
//! dropped by [`Examiner::rollback`] (the chunk will be examined again).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;

use super::aggregate;
use super::engine::{Engine, Output, RunError};
use super::fields::Match;
use super::rule::Rule;
use super::state::{KeptFinding, StateError, Store};
use super::stats::{Stats, StatsOptions};
use crate::finding::Finding;

/// When an [`Examiner`] gives its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Each chunk's findings as soon as it is examined; one that a later chunk adds records
    /// to comes again, updated (the daemon).
    EachChunk,
    /// Every finding once, from [`Examiner::finish`], built from all of its records (replay).
    AtEnd,
}

/// How an [`Examiner`] works.
#[derive(Debug, Clone)]
pub struct ExamineOptions {
    pub delivery: Delivery,
    /// Findings below this severity are left out.
    pub min_severity: f64,
    pub stats: StatsOptions,
    /// Runs only the detection at this position of the pack (a plain detection's own tests);
    /// `None` runs every enabled detection.
    pub only: Option<usize>,
}

impl Default for ExamineOptions {
    fn default() -> Self {
        Self {
            delivery: Delivery::AtEnd,
            min_severity: 0.0,
            stats: StatsOptions::default(),
            only: None,
        }
    }
}

/// Decoded records examined together.
#[derive(Debug, Default, Clone)]
pub struct Chunk {
    /// Batches of the `cloudtrail` table.
    pub cloudtrail: Vec<RecordBatch>,
    /// Batches of the `bedrock_invocations` table.
    pub invocations: Vec<RecordBatch>,
}

impl Chunk {
    /// A chunk of CloudTrail batches only.
    pub fn cloudtrail(batches: Vec<RecordBatch>) -> Self {
        Self {
            cloudtrail: batches,
            invocations: Vec::new(),
        }
    }

    /// Records in the chunk, both tables together.
    pub fn records(&self) -> usize {
        self.cloudtrail
            .iter()
            .chain(&self.invocations)
            .map(RecordBatch::num_rows)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.records() == 0
    }
}

/// What examining one chunk gave.
#[derive(Debug, Default)]
pub struct Examined {
    /// With [`Delivery::EachChunk`], the findings to send now: new ones, and updates of ones
    /// sent before that the chunk added records to. Empty with [`Delivery::AtEnd`].
    pub findings: Vec<Finding>,
    /// Detections that failed on this chunk.
    pub failures: Vec<RunError>,
    /// Records examined.
    pub records: usize,
}

impl Examined {
    /// Adds what a later chunk gave.
    fn add(&mut self, later: Examined) {
        self.findings.extend(later.findings);
        self.failures.extend(later.failures);
        self.records += later.records;
    }
}

/// A chunk whose detections run on the runtime's workers, not yet concluded.
struct Running {
    /// Its CloudTrail batches, for the statistics.
    cloudtrail: Vec<RecordBatch>,
    records: usize,
    results: tokio::task::JoinHandle<Vec<Result<Output, RunError>>>,
}

/// How long a sent finding is remembered, so that a later chunk's version is sent as an
/// update (with the records sent before) rather than as a new finding.
const SENT_MEMORY: chrono::Duration = chrono::Duration::days(2);

/// Chunks committed between expiries of the state ([`Delivery::EachChunk`]); with
/// [`Delivery::AtEnd`] the state is expired at every commit.
const EXPIRE_EVERY: usize = 50;

/// The examination pipeline: see the [module](self).
pub struct Examiner {
    engine: Arc<Engine>,
    rules: Vec<Rule>,
    stats: Stats,
    store: Store,
    options: ExamineOptions,
    /// [`Delivery::AtEnd`]: each plain detection's matches so far, in the pack's order.
    matches: Vec<Vec<Match>>,
    /// [`Delivery::AtEnd`]: statistical findings so far, by id (a later version of one
    /// holds every record of the earlier).
    statistical: BTreeMap<String, Finding>,
    /// Statistical findings claimed in a shared state and not yet confirmed.
    claimed: Vec<String>,
    /// Chunks committed since the state was last expired.
    since_expiry: usize,
    /// The chunk started by [`Examiner::examine_overlapped`] and not yet concluded.
    running: Option<Running>,
}

impl std::fmt::Debug for Examiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Examiner")
            .field("rules", &self.rules.len())
            .field("store", &self.store)
            .field("delivery", &self.options.delivery)
            .finish()
    }
}

impl Examiner {
    /// An examiner of `engine`'s pack that learns in `store` (its state is loaded now).
    pub fn new(
        engine: Arc<Engine>,
        store: Store,
        options: ExamineOptions,
    ) -> Result<Self, StateError> {
        let rules: Vec<Rule> = engine.rules().cloned().collect();
        let state = store.load()?;
        let stats = Stats::new(&rules, state, &options.stats);
        Ok(Self {
            matches: vec![Vec::new(); rules.len()],
            engine,
            rules,
            stats,
            store,
            options,
            statistical: BTreeMap::new(),
            claimed: Vec::new(),
            since_expiry: 0,
            running: None,
        })
    }

    /// The detections, in the pack's order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The planned pack.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The statistical detectors and what they learned.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Where the state is kept.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// True when statistical detections run on the chunks examined.
    pub fn learns(&self) -> bool {
        self.stats.is_active()
            && self
                .options
                .only
                .is_none_or(|i| self.rules.get(i).is_some_and(|r| r.stateful.is_some()))
    }

    /// True when the records of log object `name` (as [`super::stats::object_name`] gives
    /// it) were learned from in a chunk committed before.
    pub fn has_learned(&self, name: &str) -> bool {
        self.stats.state.learned.get(name).is_some()
    }

    /// Entries the state holds, all tables together.
    pub fn state_entries(&self) -> usize {
        self.stats.state.sizes().iter().map(|(_, n)| n).sum()
    }

    /// Examines one chunk. With [`Delivery::EachChunk`] the findings to send come back; with
    /// [`Delivery::AtEnd`] they are held for [`Examiner::finish`]. A chunk still running from
    /// [`Examiner::examine_overlapped`] is concluded first, and what it gave is part of what
    /// comes back. Fails only when a shared state cannot be asked for claims.
    pub async fn examine(&mut self, chunk: Chunk) -> Result<Examined, StateError> {
        let mut out = self.examine_overlapped(chunk).await?;
        out.add(self.drain().await?);
        Ok(out)
    }

    /// Starts the detections over `chunk` on the runtime's workers and concludes the chunk
    /// started before (its statistics, matches and findings, as [`Examiner::examine`] does),
    /// so that the two overlap: what comes back is the earlier chunk's. Chunks are concluded
    /// in the order they were given, so the findings are those of examining them in turn.
    /// Call [`Examiner::drain`] after the last one.
    pub async fn examine_overlapped(&mut self, chunk: Chunk) -> Result<Examined, StateError> {
        let next = self.start(chunk);
        match std::mem::replace(&mut self.running, next) {
            Some(before) => self.conclude(before).await,
            None => Ok(Examined::default()),
        }
    }

    /// Concludes the chunk [`Examiner::examine_overlapped`] left running, if any.
    pub async fn drain(&mut self) -> Result<Examined, StateError> {
        match self.running.take() {
            Some(running) => self.conclude(running).await,
            None => Ok(Examined::default()),
        }
    }

    /// Starts the detections over `chunk` on the runtime's workers (the engine runs one chunk
    /// at a time, in the order started); `None` for a chunk without records.
    fn start(&self, chunk: Chunk) -> Option<Running> {
        let records = chunk.records();
        if records == 0 {
            return None;
        }
        let engine = Arc::clone(&self.engine);
        let only = self.options.only;
        let cloudtrail = chunk.cloudtrail.clone();
        let results = tokio::spawn(async move {
            engine
                .run_selected(chunk.cloudtrail, chunk.invocations, only)
                .await
        });
        Some(Running {
            cloudtrail,
            records,
            results,
        })
    }

    /// What the detections over a started chunk returned, through the statistics and into
    /// matches and findings.
    async fn conclude(&mut self, running: Running) -> Result<Examined, StateError> {
        let mut out = Examined {
            records: running.records,
            ..Default::default()
        };
        let learns = self.learns();
        if learns {
            self.stats.begin_chunk(&running.cloudtrail);
        }
        let results = match running.results.await {
            Ok(results) => results,
            Err(e) => {
                // The task running the queries panicked or was cancelled: no detection's
                // output is known for this chunk.
                out.failures.push(RunError {
                    rule: "every detection".into(),
                    path: String::new(),
                    message: format!("the queries over the chunk stopped: {e}"),
                });
                Vec::new()
            }
        };
        let mut matches: Vec<Vec<Match>> = vec![Vec::new(); self.rules.len()];
        let mut observations: Vec<Vec<RecordBatch>> = vec![Vec::new(); self.rules.len()];
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(output) => {
                    matches[i] = output.matches;
                    observations[i] = output.observations;
                }
                Err(e) => out.failures.push(e),
            }
        }
        let now = chrono::Utc::now();
        let statistical = if learns {
            self.stats.end_chunk(observations, now)
        } else {
            Vec::new()
        };
        match self.options.delivery {
            Delivery::AtEnd => {
                for (all, found) in self.matches.iter_mut().zip(matches) {
                    all.extend(found);
                }
                for f in statistical {
                    self.statistical.insert(f.id.clone(), f);
                }
            }
            Delivery::EachChunk => {
                self.carry_thresholds(&mut matches);
                // A plain detection's finding holds this chunk's records (and those carried):
                // sent before, it is sent again with the records it adds.
                out.findings = self
                    .aggregate(matches, now)
                    .into_iter()
                    .filter_map(|f| match self.stats.state.sent.get(&f.id) {
                        Some(before) => update(&before.finding, &f),
                        None => Some(f),
                    })
                    .collect();
                // A statistical finding comes whole (the statistics keep its records from
                // chunk to chunk): sent again only when its records changed.
                let statistical = self.claim(statistical)?;
                out.findings.extend(statistical.into_iter().filter(|f| {
                    self.stats.state.sent.get(&f.id).is_none_or(|before| {
                        (before.finding.count, &before.finding.event_ids) != (f.count, &f.event_ids)
                    })
                }));
            }
        }
        Ok(out)
    }

    /// [`Delivery::AtEnd`]: every finding of the chunks examined (and concluded: see
    /// [`Examiner::drain`]), in order of first event time. The matches held are let go.
    pub fn finish(&mut self) -> Result<Vec<Finding>, StateError> {
        let now = chrono::Utc::now();
        let matches = std::mem::replace(&mut self.matches, vec![Vec::new(); self.rules.len()]);
        let mut findings = self.aggregate(matches, now);
        let statistical: Vec<Finding> = std::mem::take(&mut self.statistical)
            .into_values()
            .collect();
        findings.extend(self.claim(statistical)?);
        findings.sort_by(|a, b| {
            a.first_seen
                .cmp(&b.first_seen)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(findings)
    }

    /// Keeps what the chunks examined since the last commit taught, now that `sent` (their
    /// findings) are safely out: claims are confirmed, sent findings remembered for updates,
    /// the state expired now and then, and saved.
    pub fn commit(&mut self, sent: &[Finding]) -> Result<(), StateError> {
        if self.options.delivery == Delivery::EachChunk {
            for f in sent {
                self.stats.state.sent.insert(
                    f.id.clone(),
                    KeptFinding {
                        time: f.last_seen,
                        finding: f.clone(),
                    },
                );
            }
        }
        self.since_expiry += 1;
        if self.options.delivery == Delivery::AtEnd || self.since_expiry >= EXPIRE_EVERY {
            self.since_expiry = 0;
            self.stats.expire();
            let forget = chrono::Utc::now() - SENT_MEMORY;
            self.stats
                .state
                .sent
                .retain(|_, kept| kept.finding.created_at >= forget);
        }
        self.store.confirm(&self.claimed)?;
        self.claimed.clear();
        self.store.save(&mut self.stats.state)?;
        if self.options.delivery == Delivery::AtEnd {
            self.store.compact()?;
        }
        Ok(())
    }

    /// Forgets what the chunks examined since the last commit taught (their findings did not
    /// get out; they will be examined again).
    pub fn rollback(&mut self) -> Result<(), StateError> {
        if let Some(running) = self.running.take() {
            running.results.abort();
        }
        self.stats.state = self.store.load()?;
        self.claimed.clear();
        self.matches = vec![Vec::new(); self.rules.len()];
        self.statistical.clear();
        Ok(())
    }

    /// A threshold's window may span chunks: its matches are judged with those carried from
    /// earlier chunks, and what a later chunk could still join is kept.
    fn carry_thresholds(&mut self, matches: &mut [Vec<Match>]) {
        for (rule, found) in self.rules.iter().zip(matches.iter_mut()) {
            if rule.threshold.is_none() || found.is_empty() {
                continue;
            }
            if let Some(before) = self.stats.state.pending.get(&rule.id) {
                found.extend(before.iter().cloned());
            }
            let keep = aggregate::carried(rule, found);
            self.stats.state.pending.insert(rule.id.clone(), keep);
        }
    }

    /// Plain detections' findings from their matches, at or above the minimum severity.
    fn aggregate(
        &self,
        matches: Vec<Vec<Match>>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<Finding> {
        self.rules
            .iter()
            .zip(matches)
            .filter(|(_, found)| !found.is_empty())
            .flat_map(|(rule, found)| aggregate::findings(rule, found, now))
            .filter(|f| f.severity >= self.options.min_severity)
            .collect()
    }

    /// The statistical findings this process emits: those at or above the minimum severity
    /// and, in a shared state, only those it claims first.
    fn claim(&mut self, mut statistical: Vec<Finding>) -> Result<Vec<Finding>, StateError> {
        statistical.retain(|f| f.severity >= self.options.min_severity);
        if !self.store.is_shared() || statistical.is_empty() {
            return Ok(statistical);
        }
        let ids: Vec<String> = statistical.iter().map(|f| f.id.clone()).collect();
        let won = self.store.claim(&ids)?;
        let before = statistical.len();
        statistical.retain(|f| won.contains(&f.id));
        if statistical.len() < before {
            tracing::info!(
                "{} statistical findings were already emitted by another process sharing {}",
                before - statistical.len(),
                self.store.describe()
            );
        }
        self.claimed.extend(won);
        Ok(statistical)
    }
}

/// `finding` as an update of `before`, sent earlier: `None` when it adds no record.
pub fn update(before: &Finding, finding: &Finding) -> Option<Finding> {
    let known: HashSet<&String> = before.event_ids.iter().collect();
    let new: Vec<String> = finding
        .event_ids
        .iter()
        .filter(|e| !known.contains(e))
        .cloned()
        .collect();
    // Records of `finding` that `before` listed; the others (listed or beyond the list) are
    // new.
    let seen = finding.event_ids.len() - new.len();
    let added = finding.count.saturating_sub(seen);
    if added == 0 {
        return None;
    }
    let mut merged = before.clone();
    merged.count += added;
    merged.event_ids.extend(new);
    merged.first_seen = merged.first_seen.min(finding.first_seen);
    merged.last_seen = merged.last_seen.max(finding.last_seen);
    merged.created_at = finding.created_at;
    merged.bound();
    Some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{load, EngineOptions, PackOptions};

    /// The bundled sample's records, a batch per log object, in order of delivery.
    fn sample_batches() -> Vec<RecordBatch> {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/sample").to_string();
        let mut listing = crate::source::list_with(&[sample], None).unwrap();
        crate::read::delivery_order(&mut listing.objects);
        let mut decoder = crate::decode::Decoder::new(Default::default());
        listing
            .objects
            .iter()
            .filter_map(|o| {
                let decoded = decoder.decode(&o.key(), &o.fetch(usize::MAX).unwrap());
                assert!(decoded.problems.is_empty(), "{:?}", decoded.problems);
                decoded.batch
            })
            .collect()
    }

    /// Every finding, less when it was made.
    fn comparable(findings: &[Finding]) -> Vec<String> {
        let mut out: Vec<String> = findings
            .iter()
            .map(|f| {
                let mut f = f.clone();
                f.created_at = chrono::DateTime::UNIX_EPOCH;
                format!("{f:?}")
            })
            .collect();
        out.sort();
        out
    }

    /// Overlapped, a chunk's statistics and matches are concluded while the next chunk's
    /// detections run: the findings must be those of examining the chunks in turn, and every
    /// record must be counted once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overlapped_chunks_give_the_findings_of_chunks_in_turn() {
        let rules = load(&PackOptions::default()).unwrap();
        let engine = Arc::new(
            Engine::new(
                rules,
                EngineOptions {
                    threads: 2,
                    ..Default::default()
                },
            )
            .await
            .unwrap(),
        );
        let batches = sample_batches();
        let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let chunks: Vec<Chunk> = batches
            .chunks(60)
            .map(|c| Chunk::cloudtrail(c.to_vec()))
            .collect();
        assert!(chunks.len() > 3);
        let options = ExamineOptions {
            stats: StatsOptions {
                learning: std::time::Duration::ZERO,
            },
            ..Default::default()
        };
        let mut in_turn = Examiner::new(engine.clone(), Store::Memory, options.clone()).unwrap();
        let mut records = 0;
        for chunk in chunks.clone() {
            records += in_turn.examine(chunk).await.unwrap().records;
        }
        assert_eq!(records, total);
        let expected = in_turn.finish().unwrap();
        // Plain and statistical findings both.
        let stateful: HashSet<&str> = engine
            .rules()
            .filter(|r| r.stateful.is_some())
            .map(|r| r.id.as_str())
            .collect();
        assert!(expected
            .iter()
            .any(|f| stateful.contains(f.detection.as_str())));
        assert!(expected
            .iter()
            .any(|f| !stateful.contains(f.detection.as_str())));

        let mut overlapped = Examiner::new(engine.clone(), Store::Memory, options).unwrap();
        let mut records = 0;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let done = overlapped.examine_overlapped(chunk).await.unwrap();
            // The first call only starts its chunk.
            assert_eq!(done.records == 0, i == 0);
            records += done.records;
        }
        records += overlapped.drain().await.unwrap().records;
        assert_eq!(records, total);
        assert_eq!(overlapped.drain().await.unwrap().records, 0);
        assert_eq!(
            comparable(&overlapped.finish().unwrap()),
            comparable(&expected)
        );
    }
}
