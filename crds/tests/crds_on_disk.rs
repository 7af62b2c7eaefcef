//! The committed CRD YAML in deploy/crds must be exactly what the types generate.

use std::path::Path;

use ferrolb_crds::crdgen::stale_crds;

#[test]
fn committed_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    let stale = stale_crds(&dir);
    assert!(
        stale.is_empty(),
        "these CRD files are missing or differ from what the Rust types generate: {stale:?}\n\
         run `ferrolb crds` from the repository root (cargo run -p ferrolb-speaker -- crds) and commit deploy/crds"
    );
}
