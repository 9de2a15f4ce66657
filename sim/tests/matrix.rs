//! The delivery-guarantee matrix end to end on a tiny grid (madsim build only): it runs, is
//! deterministic, and renders both documents naming every row.
#![cfg(madsim)]

use sim::cluster::FaultFamily;
use sim::matrix::{self, MatrixOptions, Settings};
use sim::shard::{self, MatrixShard, Shard, ShardFile, ShardRun};

/// Sends per producer: enough for faults to matter, short runs.
const TEST_SENDS: u64 = 60;

fn tiny() -> MatrixOptions {
    let rows = Settings::rows();
    MatrixOptions {
        seeds_per_cell: 2,
        start: 1,
        jobs: 2,
        steps: Some(TEST_SENDS),
        progress: false,
        // The strongest row and an acks=1 row: the two ends of the promise.
        rows: vec![rows[0], rows[8]],
        families: vec![FaultFamily::Kills],
    }
}

#[test]
fn a_tiny_matrix_runs_and_renders_every_row() {
    let options = tiny();
    assert_eq!(options.rows[1].acks, 1, "row 8 is the first acks=1 row");
    let first = matrix::run(&options);
    assert_eq!(first.cells.len(), 2);
    assert_eq!(first.seeds_run(), 4);
    assert!(first
        .cells
        .iter()
        .all(|c| c.simulated_ms > 0 && c.steps > 0));
    // Run again as four shards (each one run of the four), merged as `cargo sim merge` does:
    // the same seeds give the same tables, sharded or not.
    let again = four_shards_merged(&options);
    assert_eq!(
        (&first.cells, &first.rows),
        (&again.cells, &again.rows),
        "the same seeds give the same table, sharded or not"
    );

    let dir = std::env::temp_dir().join(format!("rill-matrix-test-{}", std::process::id()));
    let written = matrix::write(&first, &dir).expect("the temp dir is writable");
    let md = std::fs::read_to_string(&written[0]).expect("markdown written");
    let html = std::fs::read_to_string(&written[1]).expect("html written");
    for row in &options.rows {
        assert!(md.contains(&row.label()), "{} missing:\n{md}", row.label());
        assert!(
            html.contains(&row.label()),
            "{} missing from html",
            row.label()
        );
    }
    assert!(md.contains("## Deviations from the expectation"));
    assert!(md.contains("seeds per combination: 2"));
    assert!(html.contains("<table>"));
    std::fs::remove_dir_all(&dir).expect("the temp dir can be removed");
}

/// The matrix of `options` run as four shards, their files checked and merged.
fn four_shards_merged(options: &MatrixOptions) -> matrix::Matrix {
    let work = matrix::work(options);
    let mut files = Vec::new();
    for index in 1..=4 {
        let shard = Shard { index, count: 4 };
        let share = shard.select(&work);
        let outcomes = matrix::run_work(options, &share);
        let args = vec!["--seeds".to_string(), "2".to_string()];
        let run = ShardRun::Matrix(MatrixShard::new(args, &share, &outcomes));
        let file = ShardFile::new(shard, std::time::Duration::ZERO, 1, run);
        files.push((format!("shard-{index}.json"), file));
    }
    shard::check_together(&files).expect("the four shards belong together");
    let (outcomes, _, _) = shard::merge_matrix(&files, &work).expect("the shards merge");
    let params = matrix::Params {
        seeds_per_cell: options.seeds_per_cell,
        start: options.start,
        steps: options.steps,
        jobs: options.jobs,
        wall_s: 0.0,
        commit: None,
    };
    matrix::tables(params, options, &outcomes)
}
