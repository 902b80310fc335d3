//! `trailhound bench SOURCE...`: how fast the read path runs on these logs, stage by stage.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;

use super::ReadArgs;
use crate::decode::{
    inflate, inflate_streaming, is_gzip, schema, DecodeOptions, Decoder, Projection,
};
use crate::detect::state::Store;
use crate::detect::{Chunk, Delivery, ExamineOptions, Examiner};
use crate::source;
use crate::sql::{self, CloudTrailTable};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Files, directories or glob patterns of CloudTrail logs.
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<String>,

    /// Runs of each stage; the fastest is reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,

    /// Also time the built-in detections (and those of --detections): on decoded batches,
    /// and as a whole replay from the files.
    #[arg(long)]
    pub with_detections: bool,

    /// With --with-detections, also time each detection on its own and list this many of the
    /// slowest (0 for none).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub slowest: usize,

    /// Also time writing the lake as `replay --lake` does: every record decoded whole,
    /// grouped by delivery day and written as Parquet (one thread, as replay's lake writer),
    /// into a temporary directory removed afterwards.
    #[arg(long)]
    pub with_lake: bool,

    #[command(flatten)]
    pub pack: super::rules::PackArgs,

    #[command(flatten)]
    pub read: ReadArgs,
}

/// One measured stage.
struct Stage {
    name: &'static str,
    elapsed: Duration,
}

/// Runs `work` on each object on `threads` threads; returns the wall time and the sum of
/// what `work` returned.
fn parallel<S: Send>(
    objects: &[(String, Vec<u8>)],
    threads: usize,
    state: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, &str, &[u8]) -> usize + Sync,
) -> (Duration, usize) {
    let next = AtomicUsize::new(0);
    let total = Mutex::new(0usize);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut s = state();
                let mut mine = 0;
                while let Some((key, bytes)) = objects.get(next.fetch_add(1, Ordering::Relaxed)) {
                    mine += work(&mut s, key, bytes);
                }
                *crate::sync::lock(&total) += mine;
            });
        }
    });
    (started.elapsed(), crate::sync::into_inner(total))
}

pub fn run(args: BenchArgs) -> anyhow::Result<i32> {
    let listing = source::list(&args.sources)?;
    if listing.objects.is_empty() {
        bail!(
            "no CloudTrail logs found in {} ({listing})",
            args.sources.join(" ")
        );
    }
    let threads = args.read.threads();
    let limit = args.read.max_object_size;
    let objects: Vec<(String, Vec<u8>)> = listing
        .objects
        .iter()
        .map(|o| Ok((o.key(), o.fetch(limit)?)))
        .collect::<Result<_, source::SourceError>>()?;
    let stored: usize = objects.iter().map(|(_, b)| b.len()).sum();
    eprintln!(
        "{} objects, {:.1} MB stored, {threads} threads, best of {}",
        objects.len(),
        stored as f64 / 1e6,
        args.repeat
    );

    let best = |f: &dyn Fn() -> (Duration, usize)| {
        (0..args.repeat.max(1))
            .map(|_| f())
            .min_by_key(|(d, _)| *d)
            .expect("at least one run")
    };
    let inflate_with = |inflate: fn(&[u8], &mut Vec<u8>, usize) -> Result<(), _>| {
        best(&|| {
            parallel(&objects, threads, Vec::new, |buf, _, bytes| {
                if is_gzip(bytes) {
                    let _ = inflate(bytes, buf, limit);
                    buf.len()
                } else {
                    bytes.len()
                }
            })
        })
    };
    let (inflate_time, body) = inflate_with(inflate);
    let (streaming_time, _) = inflate_with(inflate_streaming);
    let decode_with = |projection: Projection| {
        let options = DecodeOptions {
            projection,
            ..args.read.decode_options()
        };
        best(&|| {
            parallel(
                &objects,
                threads,
                || Decoder::new(options.clone()),
                |d, key, bytes| d.decode(key, bytes).records,
            )
        })
    };
    let (full_time, records) = decode_with(Projection::all());
    let name_column = schema::cloudtrail_schema().index_of("eventname")?;
    let (narrow_time, _) = decode_with(Projection::columns(&[name_column]));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    let query = "SELECT eventname, count(*) AS n FROM cloudtrail GROUP BY eventname";
    let (query_time, _) = best(&|| {
        runtime.block_on(async {
            let ctx = sql::new_session(threads).expect("session");
            let table = Arc::new(CloudTrailTable::new(
                listing.objects.clone(),
                args.read.decode_options(),
                threads,
            ));
            sql::register_objects(&ctx, table).expect("register");
            let started = Instant::now();
            let batches = ctx
                .sql(query)
                .await
                .expect("query plans")
                .collect()
                .await
                .expect("query runs");
            (started.elapsed(), batches.len())
        })
    });

    let mut stages = vec![
        Stage {
            name: "decompress only (the floor)",
            elapsed: inflate_time,
        },
        Stage {
            name: "decompress, zlib-rs streaming",
            elapsed: streaming_time,
        },
        Stage {
            name: "decode, every column",
            elapsed: full_time,
        },
        Stage {
            name: "decode, eventname only",
            elapsed: narrow_time,
        },
        Stage {
            name: "SQL count by eventname, from files",
            elapsed: query_time,
        },
    ];
    let mut slowest = String::new();
    if args.with_detections {
        let engine = args.pack.engine(&runtime, threads)?;
        // As replay reads: each service's records decoded as far as the detections read them.
        let options = crate::decode::DecodeOptions {
            by_source: crate::decode::LateProjections::new(engine.decode_projections()),
            ..args.read.decode_options()
        };
        let (batches, _) = crate::read::read_all_by_source(
            listing.objects.clone(),
            options.clone(),
            threads,
            None,
        );
        let engine = std::sync::Arc::new(engine);
        // Through the examination pipeline, as replay works: every detection, statistical
        // ones included (their state in memory), findings aggregated at the end.
        let fresh = || {
            Examiner::new(
                engine.clone(),
                Store::Memory,
                ExamineOptions {
                    delivery: Delivery::AtEnd,
                    ..Default::default()
                },
            )
        };
        // All the batches as one chunk, with a fresh state.
        let (detect_time, _) = best(&|| {
            let batches = batches.clone();
            let started = Instant::now();
            let found = fresh().and_then(|mut examiner| {
                runtime.block_on(examiner.examine(Chunk::cloudtrail(batches)))?;
                examiner.finish()
            });
            (started.elapsed(), found.map_or(0, |f| f.len()))
        });
        // As replay works: a chunk of objects at a time, one state; the next chunk is read
        // while one is examined, and a chunk's detections run while the chunk before is
        // concluded.
        let chunk_bytes = super::parse_size(crate::read::DEFAULT_CHUNK).unwrap_or(64 << 20);
        let (replay_time, _) = best(&|| {
            let started = Instant::now();
            let found = fresh()
                .map_err(anyhow::Error::from)
                .and_then(|mut examiner| {
                    let mut objects = listing.objects.clone();
                    crate::read::delivery_order(&mut objects);
                    let mut reader = crate::read::ReadAhead::spawn(
                        objects,
                        chunk_bytes,
                        options.clone(),
                        threads,
                    )?;
                    for read in reader.by_ref() {
                        runtime.block_on(
                            examiner.examine_overlapped(Chunk::cloudtrail(read.batches)),
                        )?;
                    }
                    runtime.block_on(examiner.drain())?;
                    reader.finish()?;
                    Ok(examiner.finish()?)
                });
            (started.elapsed(), found.map_or(0, |f| f.len()))
        });
        // The replay stage's two halves apart: reading every chunk, then examining them.
        let read_chunks = || {
            let mut objects = listing.objects.clone();
            crate::read::delivery_order(&mut objects);
            let queue = crate::read::ReadQueue::new(objects, options.clone());
            let mut chunks = Vec::new();
            while let Some(read) = crate::read::read_chunk(&queue, chunk_bytes, threads) {
                chunks.push(read.batches);
            }
            chunks
        };
        let (chunk_read_time, _) = best(&|| {
            let started = Instant::now();
            let chunks = read_chunks();
            (started.elapsed(), chunks.len())
        });
        let chunks = read_chunks();
        let (chunk_examine_time, _) = best(&|| {
            let chunks = chunks.clone();
            let started = Instant::now();
            let found = fresh().and_then(|mut examiner| {
                for batches in chunks {
                    runtime.block_on(examiner.examine(Chunk::cloudtrail(batches)))?;
                }
                examiner.finish()
            });
            (started.elapsed(), found.map_or(0, |f| f.len()))
        });
        drop(chunks);
        eprintln!("{} detections", engine.len());
        if args.slowest > 0 {
            slowest = slowest_detections(&runtime, &engine, batches, args.slowest)?;
        }
        stages.push(Stage {
            name: "detections, on decoded batches",
            elapsed: detect_time,
        });
        stages.push(Stage {
            name: "replay: read + detect, by chunk",
            elapsed: replay_time,
        });
        stages.push(Stage {
            name: "  of which read: files, by chunk",
            elapsed: chunk_read_time,
        });
        stages.push(Stage {
            name: "  of which detect: chunks in turn",
            elapsed: chunk_examine_time,
        });
    }
    let mut lake_size = String::new();
    if args.with_lake {
        let (elapsed, written) = lake_stage(&listing.objects, &args, threads)?;
        stages.push(Stage {
            name: "lake: group + write Parquet (1 thread)",
            elapsed,
        });
        lake_size = format!(
            "lake: {} files, {:.1} MB ({:.0}% of the {:.1} MB stored)\n",
            written.files,
            written.bytes as f64 / 1e6,
            100.0 * written.bytes as f64 / stored.max(1) as f64,
            stored as f64 / 1e6
        );
    }
    println!(
        "{records} records, {:.1} MB decompressed",
        body as f64 / 1e6
    );
    println!(
        "{:<38} {:>9} {:>14} {:>10}",
        "stage", "seconds", "records/s", "MB/s"
    );
    for s in &stages {
        let secs = s.elapsed.as_secs_f64().max(1e-9);
        println!(
            "{:<38} {:>9.3} {:>14.0} {:>10.1}",
            s.name,
            secs,
            records as f64 / secs,
            body as f64 / 1e6 / secs
        );
    }
    print!("{lake_size}{slowest}");
    Ok(0)
}

/// The lake written from `objects`' records (decoded beforehand, every column), best of
/// `--repeat`: the time to group them and write the files, and what was written.
fn lake_stage(
    objects: &[source::ObjectRef],
    args: &BenchArgs,
    threads: usize,
) -> anyhow::Result<(Duration, crate::lake::Written)> {
    use crate::lake::write::RecordTable;
    use crate::lake::{LakeWriter, ReplayGroups};
    let (batches, _) = crate::read::read_all_by_source(
        objects.to_vec(),
        args.read.decode_options(),
        threads,
        None,
    );
    let mut best: Option<(Duration, crate::lake::Written)> = None;
    for run in 0..args.repeat.max(1) {
        let dir = std::env::temp_dir().join(format!(
            "trailhound-bench-lake-{}-{run}",
            std::process::id()
        ));
        let timed = (|| -> anyhow::Result<(Duration, crate::lake::Written)> {
            let writer = LakeWriter::new(&dir)?;
            let started = Instant::now();
            // Every record is in memory already (read beforehand): no cap on what waits.
            let mut groups =
                ReplayGroups::plan(RecordTable::CloudTrail, objects).with_cap(usize::MAX);
            groups.add(&batches)?;
            groups.read(objects.len(), &writer)?;
            groups.finish(&writer)?;
            writer.sync()?;
            Ok((started.elapsed(), groups.written()))
        })();
        let _ = std::fs::remove_dir_all(&dir);
        let timed = timed?;
        if best.as_ref().is_none_or(|(d, _)| timed.0 < *d) {
            best = Some(timed);
        }
    }
    best.ok_or_else(|| anyhow::anyhow!("no lake run"))
}

/// A table of the `n` detections that took longest on their own over `batches`.
fn slowest_detections(
    runtime: &tokio::runtime::Runtime,
    engine: &crate::detect::Engine,
    batches: Vec<datafusion::arrow::record_batch::RecordBatch>,
    n: usize,
) -> anyhow::Result<String> {
    use std::fmt::Write;
    let mut timed = runtime.block_on(engine.profile(batches));
    let total: Duration = timed.iter().map(|(_, d, _)| *d).sum();
    timed.sort_by_key(|t| std::cmp::Reverse(t.1));
    let mut out = String::new();
    writeln!(
        out,
        "slowest detections, each run alone ({:.3} s for all {} one after another):",
        total.as_secs_f64(),
        timed.len()
    )?;
    writeln!(
        out,
        "{:<48} {:>9} {:>7} {:>9}",
        "detection", "ms", "share", "matches"
    )?;
    for (id, took, found) in timed.iter().take(n) {
        let found = match found {
            Ok(n) => n.to_string(),
            Err(e) => anyhow::bail!("{e}"),
        };
        writeln!(
            out,
            "{id:<48} {:>9.1} {:>6.1}% {found:>9}",
            took.as_secs_f64() * 1e3,
            100.0 * took.as_secs_f64() / total.as_secs_f64().max(1e-9)
        )?;
    }
    Ok(out)
}
