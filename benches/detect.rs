//! The detection stage on `simulate` output, through the examination pipeline as replay
//! uses it (every built-in detection, statistics on with their state in memory, findings
//! aggregated at the end): over decoded batches, and a whole replay (decode plus
//! examination), in events/s and MB/s of decompressed JSON.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use trailhound::decode::DecodeOptions;
use trailhound::detect::examine::{Chunk, Delivery, ExamineOptions, Examiner};
use trailhound::detect::state::Store;
use trailhound::detect::{self, Engine, EngineOptions, PackOptions};

fn detections(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = trailhound::simulate::SimConfig {
        days: 1,
        accounts: 2,
        scale: 0.5,
        ..Default::default()
    };
    let summary = trailhound::simulate::simulate(&config, dir.path()).expect("simulate");
    let listing = trailhound::source::list(&[dir.path().display().to_string()]).expect("list");
    let threads = trailhound::read::default_threads();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime");
    let rules = detect::load(&PackOptions::default()).expect("the built-in pack loads");
    let options = EngineOptions {
        threads,
        ..Default::default()
    };
    let engine = std::sync::Arc::new(
        runtime
            .block_on(Engine::new(rules, options))
            .expect("the built-in pack plans"),
    );
    // A fresh examiner per iteration, so every iteration learns from nothing.
    let examine = |batches| {
        let mut examiner = Examiner::new(
            engine.clone(),
            Store::Memory,
            ExamineOptions {
                delivery: Delivery::AtEnd,
                ..Default::default()
            },
        )
        .expect("a state in memory loads");
        runtime
            .block_on(examiner.examine(Chunk::cloudtrail(batches)))
            .expect("a state in memory claims");
        examiner.finish().expect("a state in memory claims")
    };
    let (batches, report) = trailhound::read::read_all(
        listing.objects.clone(),
        DecodeOptions::default(),
        threads,
        None,
    );
    for (unit, throughput) in [
        ("events", Throughput::Elements(summary.records as u64)),
        ("MB", Throughput::Bytes(report.body_bytes)),
    ] {
        let mut group = c.benchmark_group(format!("detect_{unit}"));
        group.throughput(throughput);
        group.sample_size(10);
        group.bench_function("whole_pack_on_batches", |b| {
            b.iter(|| examine(batches.clone()))
        });
        group.bench_function("replay_decode_and_detect", |b| {
            b.iter(|| {
                let (batches, _) = trailhound::read::read_all(
                    listing.objects.clone(),
                    DecodeOptions::default(),
                    threads,
                    None,
                );
                examine(batches)
            })
        });
        group.finish();
    }
}

criterion_group!(benches, detections);
criterion_main!(benches);
