//! The read path, stage by stage, on `simulate` output: decompression, JSON parsing, building
//! Arrow, and all of it together. Throughput is reported per decompressed byte (MB/s) and per
//! record (events/s).

use std::io::Read;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use trailhound::decode::{
    inflate, inflate_streaming, DecodeOptions, Decoder, Projection, RecordsBuilder, PADDING,
};

/// A whole-object gzip reader: `inflate` (libdeflate first) or the streaming one.
type Inflate = fn(&[u8], &mut Vec<u8>, usize) -> Result<(), trailhound::decode::InflateError>;

struct Corpus {
    gz: Vec<Vec<u8>>,
    bodies: Vec<Vec<u8>>,
    records: usize,
    body_bytes: usize,
}

fn corpus() -> Corpus {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = trailhound::simulate::SimConfig {
        days: 1,
        accounts: 2,
        scale: 0.5,
        ..Default::default()
    };
    let summary = trailhound::simulate::simulate(&config, dir.path()).expect("simulate");
    let listing = trailhound::source::list(&[dir.path().display().to_string()]).expect("list");
    let gz: Vec<Vec<u8>> = listing
        .objects
        .iter()
        .map(|o| o.fetch(usize::MAX).expect("read"))
        .collect();
    let bodies: Vec<Vec<u8>> = gz
        .iter()
        .map(|g| {
            let mut b = Vec::new();
            flate2::read::MultiGzDecoder::new(&g[..])
                .read_to_end(&mut b)
                .expect("gzip");
            b
        })
        .collect();
    let body_bytes = bodies.iter().map(Vec::len).sum();
    Corpus {
        gz,
        bodies,
        records: summary.records,
        body_bytes,
    }
}

fn stages(c: &mut Criterion) {
    let corpus = corpus();
    for (unit, throughput) in [
        ("MB", Throughput::Bytes(corpus.body_bytes as u64)),
        ("events", Throughput::Elements(corpus.records as u64)),
    ] {
        let mut group = c.benchmark_group(format!("read_path_{unit}"));
        group.throughput(throughput);
        group.sample_size(10);

        for (id, inflate) in [
            ("decompress", inflate as Inflate),
            ("decompress_zlib_rs_streaming", inflate_streaming),
        ] {
            group.bench_function(id, |b| {
                let mut out = Vec::new();
                b.iter(|| {
                    for g in &corpus.gz {
                        inflate(g, &mut out, usize::MAX >> 1).expect("inflate");
                    }
                })
            });
        }

        group.bench_function("parse", |b| {
            b.iter_batched(
                || padded(&corpus.bodies),
                |mut bodies| {
                    let mut buffers = simd_json::Buffers::default();
                    let mut nodes = 0;
                    for (body, len) in &mut bodies {
                        let mut tape = simd_json::Tape::null();
                        simd_json::fill_tape_padded(body, *len, &mut buffers, &mut tape)
                            .expect("json");
                        nodes += tape.0.len();
                    }
                    nodes
                },
                BatchSize::LargeInput,
            )
        });

        group.bench_function("build_arrow", |b| {
            // Parse once; build the batches from the parsed tapes each iteration.
            let mut bodies = padded(&corpus.bodies);
            let mut buffers = simd_json::Buffers::default();
            let tapes: Vec<simd_json::Tape<'_>> = bodies
                .iter_mut()
                .map(|(body, len)| {
                    let mut tape = simd_json::Tape::null();
                    simd_json::fill_tape_padded(body, *len, &mut buffers, &mut tape).expect("json");
                    tape
                })
                .collect();
            let mut builder = RecordsBuilder::new(Projection::all(), 4096);
            b.iter(|| {
                let mut rows = 0;
                for tape in &tapes {
                    let simd_json::Node::Object { .. } = tape.0[0] else {
                        panic!("object")
                    };
                    // {"Records":[ ... ]}: the array starts at node 2.
                    let simd_json::Node::Array { len, .. } = tape.0[2] else {
                        panic!("array")
                    };
                    let mut at = 3;
                    for _ in 0..len {
                        let size = trailhound::decode::json_text::value_len(&tape.0[at..]);
                        builder.append(&tape.0[at..at + size]).expect("record");
                        at += size;
                    }
                    rows += builder.finish("k").map_or(0, |b| b.num_rows());
                }
                rows
            })
        });

        let name = trailhound::decode::schema::cloudtrail_schema()
            .index_of("eventname")
            .unwrap();
        for (id, projection) in [
            ("all_together", Projection::all()),
            ("all_together_eventname_only", Projection::columns(&[name])),
        ] {
            group.bench_function(id, |b| {
                let mut decoder = Decoder::new(DecodeOptions {
                    projection: projection.clone(),
                    ..Default::default()
                });
                b.iter(|| {
                    corpus
                        .gz
                        .iter()
                        .map(|g| decoder.decode("k", g).records)
                        .sum::<usize>()
                })
            });
        }
        group.finish();
    }
}

fn padded(bodies: &[Vec<u8>]) -> Vec<(Vec<u8>, usize)> {
    bodies
        .iter()
        .map(|b| {
            let mut v = b.clone();
            let len = v.len();
            v.resize(len + PADDING, 0);
            (v, len)
        })
        .collect()
}

criterion_group!(benches, stages);
criterion_main!(benches);
