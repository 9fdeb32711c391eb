//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the fuzz targets' own
//! entry points (`fuzz/src/lib.rs`, included here), so that every input the fuzzer kept, and
//! every crash it found once its input is added, runs in every `cargo test`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unreachable_pub)]
#![cfg(not(target_arch = "wasm32"))]

use std::path::Path;

#[path = "../../../fuzz/src/lib.rs"]
mod targets;

#[test]
fn the_committed_fuzz_corpora_replay_without_a_failure() {
    let corpora = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut replayed = 0;
    for (name, entry) in targets::TARGETS {
        let dir = corpora.join(name);
        let inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|file| file.unwrap().path())
            .collect();
        assert!(inputs.len() >= 2, "the {name} corpus has seeds");
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let outcome = std::panic::catch_unwind(|| entry(&data));
            assert!(outcome.is_ok(), "{name}: {} makes the target fail", input.display());
            replayed += 1;
        }
    }
    eprintln!("{replayed} corpus inputs replayed");
}
