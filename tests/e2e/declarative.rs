//! Every shipped plugin's declarative tests (`plugins/<name>/tests/*.yaml`, format in
//! docs/events-format.md), run by the relay's declarative runner against the built components:
//! the real runtime, through the same chain as production. New files are picked up as they are
//! added.
use std::path::PathBuf;

use walrelay::plugin::declarative::{self, Outcome};

use crate::support::{plugins_dir, services};

/// `plugins/*/tests/*.yaml`, sorted.
fn test_files() -> Vec<PathBuf> {
    let plugins = services().repo.join("plugins");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&plugins).expect("plugins/") {
        let tests = entry.expect("entry").path().join("tests");
        let Ok(dir) = std::fs::read_dir(&tests) else {
            continue;
        };
        for file in dir {
            let path = file.expect("entry").path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_plugin_declarative_test_passes() {
    let files = test_files();
    assert!(
        !files.is_empty(),
        "no plugins/*/tests/*.yaml: the runner would test nothing"
    );
    let components = plugins_dir();
    // Compiling a component per case is most of the time: two files at a time.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(file) = files.get(i) else { break };
                let result = declarative::run_file(file, components);
                results
                    .lock()
                    .expect("results")
                    .push((file.clone(), result));
            });
        }
    });
    let mut results = results.into_inner().expect("results");
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let mut failures = Vec::new();
    let mut cases = 0;
    for (file, result) in &results {
        match result {
            Err(e) => failures.push(format!("{}: {e:#}", file.display())),
            Ok(report) => {
                println!("{report}");
                cases += report.cases.len();
                for case in &report.cases {
                    if let Outcome::Fail(why) = &case.outcome {
                        failures.push(format!(
                            "{}: case `{}`:\n    {}",
                            file.display(),
                            case.name,
                            why.replace('\n', "\n    ")
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the declarative tests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cases > 0, "the test files hold no case");
}
