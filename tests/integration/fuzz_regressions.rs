//! Every input the fuzzers ever found a defect with, run through the same check again
//! (`tests/fuzz-regressions/<target>/`, checks in `trailhound::fuzz`).

use std::path::Path;
use std::time::Instant;

#[test]
fn every_input_the_fuzzers_found_passes_its_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut ran = 0;
    for (target, check) in trailhound::fuzz::TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let started = Instant::now();
            check(&data);
            // A hang shows as a test that never ends; this says which input it was.
            eprintln!("{target} {}: {:?}", path.display(), started.elapsed());
            ran += 1;
        }
    }
    assert!(
        ran >= 2,
        "the regression inputs are missing: {}",
        root.display()
    );
}
