//! `ferrolb check`: lint manifests offline. Loads every manifest, validates the whole set and reports
//! every problem, one line each: `file: Kind namespace/name: field: problem`.

use std::path::Path;

use crate::manifest::{load_paths, Objects};
use crate::validate::validate;
use crate::Kind;

/// The outcome of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// One line per problem, loading problems first, then validation problems in kind order.
    pub problems: Vec<String>,
    /// A one-line summary: what was checked, or how many problems were found.
    pub summary: String,
}

impl Report {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Check the manifests under `paths` (directories recursively, or files).
pub fn check_paths<P: AsRef<Path>>(paths: &[P]) -> Report {
    let (objects, load_errors) = load_paths(paths);
    let mut problems: Vec<String> = load_errors.iter().map(ToString::to_string).collect();
    if let Err(errors) = validate(&objects) {
        problems.extend(errors.iter().map(|e| e.line()));
    }
    let found: usize = Kind::ALL.iter().map(|&k| objects.count(k)).sum();
    if found == 0 && problems.is_empty() {
        problems.push(format!(
            "{}: no ferrolb.io objects found (IPAddressPool, BGPPeer, BGPAdvertisement, L2Advertisement, Community, BFDProfile)",
            paths.iter().map(|p| p.as_ref().display().to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
    let summary = if problems.is_empty() {
        format!("ok: {}", inventory(&objects))
    } else {
        let n = problems.len();
        format!("{n} problem{} found", if n == 1 { "" } else { "s" })
    };
    Report { problems, summary }
}

/// `2 IPAddressPools, 1 BGPPeer, … (and 2 Services)`.
fn inventory(objects: &Objects) -> String {
    let plural = |n: usize, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else if let Some(stem) = one.strip_suffix('y') {
            format!("{n} {stem}ies")
        } else {
            format!("{n} {one}s")
        }
    };
    let mut parts: Vec<String> = Kind::ALL
        .iter()
        .filter(|&&k| objects.count(k) > 0)
        .map(|&k| plural(objects.count(k), k.name()))
        .collect();
    if parts.is_empty() {
        parts.push("no ferrolb objects".into());
    }
    let mut others = Vec::new();
    for (n, what) in [
        (objects.services.len(), "Service"),
        (objects.namespaces.len(), "Namespace"),
        (objects.secrets.len(), "Secret"),
    ] {
        if n > 0 {
            others.push(plural(n, what));
        }
    }
    let mut s = parts.join(", ");
    if !others.is_empty() {
        s.push_str(&format!(" (and {})", others.join(", ")));
    }
    if objects.ignored > 0 {
        s.push_str(&format!(
            "; {} other object{} ignored",
            objects.ignored,
            if objects.ignored == 1 { "" } else { "s" }
        ));
    }
    s
}
