//! `verify::compile`: the pinned sources, compiled with foundry-compilers through the solcjs shim,
//! give exactly the committed artifacts (bytecode and immutable positions), and the cache returns
//! the same.

use std::{path::Path, time::Instant};

use settle_deploy::verify::{self, Shipped};

#[test]
fn compiling_the_pinned_sources_reproduces_the_committed_artifacts() {
    let contracts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts");
    let cache = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let compiled = verify::compile(&contracts, Some(cache.path())).expect("compile");
    eprintln!(
        "compiled the shipped job with solc {} in {:.1} s",
        compiled.solc_version,
        started.elapsed().as_secs_f64()
    );
    assert!(!compiled.cached);
    for contract in Shipped::ALL {
        let built = compiled.runtime(contract).expect("compiled");
        let committed = verify::committed(contract).expect("artifact");
        assert_eq!(built, &committed, "{contract}");
        assert!(built.compare(&committed.code).is_match(), "{contract}");
    }
    assert_eq!(
        compiled
            .runtime(Shipped::SplitSettlement)
            .expect("settlement")
            .immutables
            .len(),
        9
    );

    let again = verify::compile(&contracts, Some(cache.path())).expect("cached compile");
    assert!(again.cached);
    assert_eq!(again.contracts, compiled.contracts);
    assert_eq!(again.solc_version, compiled.solc_version);
}

#[test]
fn a_missing_contracts_directory_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("contracts");
    let err = verify::compile(&missing, None).expect_err("no sources");
    assert_eq!(
        err.to_string(),
        format!(
            "{} is missing; run from the repository root (or pass --contracts DIR) and install node_modules with scripts/setup",
            missing.display()
        )
    );
}
