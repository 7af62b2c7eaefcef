//! Allocator benchmark: N Services into 100.64.0.0/10, then a restart. The Services sit in 1,000 namespaces
//! labelled with their name (as Kubernetes does), and each has one label of its own.
//!
//! ```sh
//! cargo run --release -p ferrolb-allocator --example bench -- --sizes 10000,100000,1000000 --runs 3
//! ```
//!
//! Each size runs in its own child process, so the peak memory (`VmHWM`) is that size's alone; the sizes are
//! run in turn `--runs` times, and each figure is the best run (the least disturbed one) with the median.
//! Per size:
//! - **allocate**: a fresh allocator reconciles N new Services one by one (the controller path);
//! - **restart**: a fresh allocator imports all N statuses and reconciles every Service again, in the
//!   orders `Core::start` uses (more ingress IPs first then by key; then by key); it must change nothing;
//! - **allocate_all**: the standalone whole-state function on the N Services with their statuses; it must
//!   return the same assignments;
//! - **reference**: a plain `HashMap<&str, u32>` inserting and then looking up the N keys `namespace/name`,
//!   the least any keyed structure does, to show what the machine's memory does to growth.
//!
//! Every child runs the whole sequence twice. **Cold** is the first pass, in memory the process has never
//! touched: each new page costs a page fault, which on a virtual machine can be several µs. **Warm** is the
//! second pass, in memory the first one used and gave back to malloc (the child runs with glibc's
//! `mmap_max=0` and a high `trim_threshold`, so freed memory stays in the process): the allocator's own
//! work. Growth between sizes is printed for both, next to n log n.
//!
//! Building the N input objects is not timed, but its memory is part of the peak (and shown on its own as
//! "inputs": the resident memory once they are built); nor is sorting them into
//! start-up order (the caller's work, as `Core::start` does it; reported as `caller_sort_s`). Dropping the
//! allocator is timed only inside `allocate_all`, which builds and drops one. The last line is JSON.
//!
//! `--instructions` runs each size once under valgrind's callgrind instead, and prints the instructions each
//! phase executes: figures that repeat however busy the machine is, and leave out what memory costs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ferrolb_allocator::{
    allocate_all, AllocationError, Allocator, Assignment, PoolConfig, Reconciled, ServiceKey,
    ServicePort, ServiceView,
};
use serde_json::{json, Value};

const PHASES: [&str; 4] = ["allocate_s", "restart_s", "allocate_all_s", "reference_s"];
/// The phase functions, in the order they run, and the marker after each: `--instructions` dumps counts on
/// entering each.
const PHASE_FUNCTIONS: [&str; 5] = [
    "phase_allocate",
    "phase_restart",
    "phase_allocate_all",
    "phase_reference",
    "phase_done",
];
/// Keeps freed memory in the child, so that the warm pass reuses pages instead of faulting new ones.
const CHILD_MALLOC: &str = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let n: usize = args[i + 1].parse().expect("size");
        println!("{}", child(n));
        return;
    }
    let flag = |name: &str| args.iter().position(|a| a == name).map(|i| &args[i + 1]);
    let sizes: Vec<usize> = match flag("--sizes") {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().replace('_', "").parse().expect("size"))
            .collect(),
        None => vec![10_000, 100_000, 1_000_000],
    };
    let runs: usize = flag("--runs").map_or(3, |r| r.parse().expect("--runs N"));
    let exe = std::env::current_exe().expect("own path");
    if args.iter().any(|a| a == "--instructions") {
        count_instructions(&exe, &sizes);
        return;
    }
    println!(
        "ferrolb-allocator bench: N Services into 100.64.0.0/10; {runs} run(s), one child process per size and \
         run; best run (median)"
    );
    // Sizes interleaved within each run, so that a slow spell of the machine hits every size alike.
    let mut per_size: Vec<Vec<Value>> = vec![Vec::new(); sizes.len()];
    for _ in 0..runs {
        for (i, n) in sizes.iter().enumerate() {
            let line = run_child(Command::new(&exe), *n);
            per_size[i].push(serde_json::from_str(line.trim()).expect("child JSON"));
        }
    }

    let mut growth = Vec::new();
    for pass in ["warm", "cold"] {
        println!("\n{pass}:");
        println!(
            "{:>10} {:>16} {:>16} {:>16} {:>16} {:>9} {:>10}",
            "services",
            "allocate s",
            "restart s",
            "allocate_all s",
            "reference s",
            "peak MiB",
            "inputs MiB"
        );
        for (n, runs) in sizes.iter().zip(&per_size) {
            let cells: Vec<String> = PHASES
                .iter()
                .map(|p| {
                    let (best, median) = stat(runs, pass, p);
                    format!("{best:.3} ({median:.3})")
                })
                .collect();
            let most = |field: &str| {
                runs.iter()
                    .map(|v| v[field].as_f64().unwrap())
                    .fold(0.0, f64::max)
                    / 1024.0
            };
            println!(
                "{n:>10} {:>16} {:>16} {:>16} {:>16} {:>9.1} {:>10.1}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                most("peak_rss_kib"),
                most("inputs_rss_kib"),
            );
        }
        for i in 1..sizes.len() {
            let (a, b) = (&per_size[i - 1], &per_size[i]);
            growth.push(growth_between(pass, sizes[i - 1], sizes[i], |p| {
                stat(b, pass, p).0 / stat(a, pass, p).0
            }));
        }
    }
    let results: Vec<Value> = sizes
        .iter()
        .zip(&per_size)
        .map(|(n, runs)| {
            let best = |pass: &str| -> Value {
                PHASES
                    .iter()
                    .map(|p| (p.to_string(), stat(runs, pass, p).0.into()))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            };
            json!({ "services": n, "best_warm": best("warm"), "best_cold": best("cold"), "runs": runs })
        })
        .collect();
    println!(
        "{}",
        json!({ "bench": "allocator", "pool": "100.64.0.0/10", "results": results, "growth": growth })
    );
}

/// Runs `command` (this benchmark, or a tool given this benchmark) with `--child n` and the child's malloc
/// settings; returns what it printed, or fails with what it said.
fn run_child(mut command: Command, n: usize) -> String {
    let out = command
        .args(["--child", &n.to_string()])
        .env("GLIBC_TUNABLES", CHILD_MALLOC)
        .output()
        .expect("run the child (under valgrind: Debian package valgrind)");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Prints the growth of every phase from `from` to `to` Services next to n log n's, and returns it as JSON.
/// `ratio`: a phase's figure at `to` over its figure at `from`.
fn growth_between(pass: &str, from: usize, to: usize, ratio: impl Fn(&str) -> f64) -> Value {
    let (a, b) = (from as f64, to as f64);
    let n_log_n = b * b.ln() / (a * a.ln());
    let r: Vec<f64> = PHASES.iter().map(|p| ratio(p)).collect();
    println!(
        "growth {from} -> {to}: allocate x{:.1}, restart x{:.1}, allocate_all x{:.1}; reference x{:.1}; \
         n log n x{n_log_n:.1}",
        r[0], r[1], r[2], r[3],
    );
    json!({
        "pass": pass, "from": from, "to": to, "n_log_n": n_log_n,
        "allocate": r[0], "restart": r[1], "allocate_all": r[2], "reference": r[3],
    })
}

/// A directory of callgrind's output, removed when dropped, also when the child fails.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(path: PathBuf) -> Self {
        std::fs::create_dir_all(&path).expect("temporary directory");
        Self(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Best (least disturbed) and median of one figure over the runs.
fn stat(runs: &[Value], pass: &str, phase: &str) -> (f64, f64) {
    let mut t: Vec<f64> = runs
        .iter()
        .map(|v| v[pass][phase].as_f64().unwrap())
        .collect();
    t.sort_by(f64::total_cmp);
    (t[0], t[t.len() / 2])
}

/// One size, in this (child) process: the cold pass, then the warm one.
fn child(n: usize) -> Value {
    let mut services: Vec<ServiceView> = (0..n)
        .map(|i| {
            let mut s = ServiceView::load_balancer(format!("ns-{}", i % 1000), format!("svc-{i}"));
            s.ports = vec![ServicePort::tcp(80)];
            // As in a real cluster: every namespace carries its name as a label, and Services an app label.
            s.namespace_labels
                .insert("kubernetes.io/metadata.name".into(), s.namespace.clone());
            s.labels
                .insert("app.kubernetes.io/name".into(), format!("app-{}", i % 5000));
            s
        })
        .collect();
    let inputs_rss_kib = status_kib("VmRSS");
    let cold = pass(&mut services);
    let warm = pass(&mut services);
    json!({
        "services": n, "cold": cold, "warm": warm,
        "peak_rss_kib": status_kib("VmHWM"), "inputs_rss_kib": inputs_rss_kib,
    })
}

/// Every phase once, on Services without status.
fn pass(services: &mut [ServiceView]) -> Value {
    let n = services.len();
    let pools = vec![PoolConfig::new("bench", &["100.64.0.0/10"])];
    for s in services.iter_mut() {
        s.ingress_ips.clear();
    }

    // Allocate: the controller reconciling N new Services.
    let start = Instant::now();
    let live = phase_allocate(&pools, services);
    phase_done();
    let allocate_s = start.elapsed().as_secs_f64();
    assert_eq!(live.len(), n);

    // The controller writes the statuses, then restarts (the old allocator is gone).
    for s in services.iter_mut() {
        s.ingress_ips = live.assignment(&s.key()).expect("assigned").ips;
    }
    let stats = live.pool_stats("bench").expect("pool");
    drop(live);

    // Restart, as `Core::start` does it: import every status (more ingress IPs first, then by key), then
    // reconcile every Service by key. Putting them in those orders is the caller's work, timed on its own.
    let start = Instant::now();
    let mut import_order: Vec<&ServiceView> = services.iter().collect();
    import_order.sort_by(|a, b| {
        (b.ingress_ips.len(), &a.namespace, &a.name).cmp(&(
            a.ingress_ips.len(),
            &b.namespace,
            &b.name,
        ))
    });
    let mut key_order = import_order.clone();
    key_order.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let caller_sort_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let (restarted, outcomes) = phase_restart(&pools, import_order, key_order);
    phase_done();
    let restart_s = start.elapsed().as_secs_f64();
    // Checked outside the timed part, as for allocate_all below.
    let changed = outcomes
        .iter()
        .filter(|(s, r)| r.assignment().map(|a| &a.ips) != Some(&s.ingress_ips))
        .count();
    assert_eq!(changed, 0, "a restart changed assignments");
    drop(outcomes);
    drop(restarted);

    // Standalone: the whole-state function on the same objects.
    let start = Instant::now();
    let all = phase_allocate_all(&pools, services);
    phase_done();
    let allocate_all_s = start.elapsed().as_secs_f64();
    let changed_all = services
        .iter()
        .filter(|s| {
            all.get(&s.key())
                .and_then(|r| r.as_ref().ok())
                .map(|a| &a.ips)
                != Some(&s.ingress_ips)
        })
        .count();
    assert_eq!(changed_all, 0, "allocate_all changed assignments");
    drop(all);

    json!({
        "allocate_s": allocate_s,
        "restart_s": restart_s,
        "caller_sort_s": caller_sort_s,
        "allocate_all_s": allocate_all_s,
        "reference_s": reference(services),
        "changed_after_restart": changed,
        "changed_by_allocate_all": changed_all,
        "assigned_ipv4": stats.assigned_ipv4,
        "available_ipv4": stats.available_ipv4,
    })
}

/// A `HashMap` of the N keys: insert all, then look each up once.
fn reference(services: &[ServiceView]) -> f64 {
    let keys: Vec<String> = services.iter().map(|s| s.key().to_string()).collect();
    let start = Instant::now();
    let sum = phase_reference(&keys);
    phase_done();
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(sum, (0..keys.len() as u64).sum::<u64>());
    elapsed
}

// The timed phases, each a function of its own that is never inlined, so that `--instructions` can count
// each one's instructions under callgrind (which dumps a profile as each of them returns).

/// A fresh allocator reconciles every Service, one by one.
#[inline(never)]
fn phase_allocate(pools: &[PoolConfig], services: &[ServiceView]) -> Allocator {
    let mut live = Allocator::new(None);
    live.set_pools(pools.to_vec()).expect("pool");
    for s in services {
        match live.reconcile(s) {
            Reconciled::Handled { result: Ok(_), .. } => {}
            other => panic!("{}: {other:?}", s.key()),
        }
    }
    live
}

/// A fresh allocator imports every status, then reconciles every Service.
#[inline(never)]
fn phase_restart<'a>(
    pools: &[PoolConfig],
    import_order: Vec<&ServiceView>,
    key_order: Vec<&'a ServiceView>,
) -> (Allocator, Vec<(&'a ServiceView, Reconciled)>) {
    let mut restarted = Allocator::new(None);
    restarted.set_pools(pools.to_vec()).expect("pool");
    restarted.reserve(key_order.len()); // the controller knows how many Services it listed
    for s in import_order {
        restarted.import(s);
    }
    let outcomes = key_order
        .into_iter()
        .map(|s| (s, restarted.reconcile(s)))
        .collect();
    (restarted, outcomes)
}

#[inline(never)]
fn phase_allocate_all(
    pools: &[PoolConfig],
    services: &[ServiceView],
) -> BTreeMap<ServiceKey, Result<Assignment, AllocationError>> {
    allocate_all(pools, None, services).expect("pool")
}

/// Marks the end of a phase for `--instructions`: callgrind dumps its counts on entering any `phase_*`.
#[inline(never)]
fn phase_done() {
    std::hint::black_box(());
}

/// Insert every key, then look each up once; returns the sum of the values found.
#[inline(never)]
fn phase_reference(keys: &[String]) -> u64 {
    let mut map: HashMap<&str, u32> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        map.insert(k, i as u32);
    }
    keys.iter().map(|k| u64::from(map[k.as_str()])).sum()
}

/// A memory figure of this process in KiB: `VmHWM` (peak resident) or `VmRSS` (resident now).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `--instructions`: every size once under valgrind's callgrind, which counts the instructions each phase
/// executes. Unlike seconds, the counts repeat exactly whatever else the machine does, and they leave out
/// what memory costs: growth here is the algorithm's alone. (Slow: about 300 s for 1,000,000 Services.)
fn count_instructions(exe: &Path, sizes: &[usize]) {
    println!("ferrolb-allocator bench: instructions per phase under callgrind, millions");
    let dir = std::env::temp_dir().join(format!("ferrolb-bench-callgrind-{}", std::process::id()));
    let mut per_size = Vec::new();
    for n in sizes {
        let scratch = ScratchDir::new(dir.clone());
        let mut callgrind = Command::new("valgrind");
        callgrind.arg("--tool=callgrind").arg(format!(
            "--callgrind-out-file={}",
            scratch.0.join("out").display()
        ));
        // Exact names: a pattern would also match the closures and drop glue inside the phases where the
        // compiler does not inline them, and dump on every Service.
        for f in PHASE_FUNCTIONS {
            callgrind.arg(format!("--dump-before=bench::{f}"));
        }
        callgrind.arg(exe);
        run_child(callgrind, *n);
        let phases = read_phase_counts(&scratch.0);
        drop(scratch);
        assert_eq!(
            phases.len(),
            2 * PHASES.len(),
            "one count per phase and pass"
        );
        let pass = |counts: &[(String, u64)]| -> Value {
            counts
                .iter()
                .map(|(phase, ir)| (format!("{phase}_instructions"), (*ir).into()))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        per_size.push(json!({
            "services": n,
            "cold": pass(&phases[..PHASES.len()]),
            "warm": pass(&phases[PHASES.len()..]),
        }));
    }
    let count = |v: &Value, pass: &str, phase: &str| -> f64 {
        let name = format!("{}_instructions", phase.trim_end_matches("_s"));
        v[pass][name].as_f64().expect("count")
    };
    let mut growth = Vec::new();
    for pass in ["warm", "cold"] {
        println!("\n{pass}:");
        println!(
            "{:>10} {:>12} {:>12} {:>14} {:>12}",
            "services", "allocate", "restart", "allocate_all", "reference"
        );
        for v in &per_size {
            let cells: Vec<String> = PHASES
                .iter()
                .map(|p| format!("{:.1}", count(v, pass, p) / 1e6))
                .collect();
            println!(
                "{:>10} {:>12} {:>12} {:>14} {:>12}",
                v["services"].as_u64().expect("size"),
                cells[0],
                cells[1],
                cells[2],
                cells[3]
            );
        }
        for pair in per_size.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let size = |v: &Value| v["services"].as_u64().expect("size") as usize;
            growth.push(growth_between(pass, size(a), size(b), |p| {
                count(b, pass, p) / count(a, pass, p)
            }));
        }
    }
    println!(
        "{}",
        json!({ "bench": "allocator-instructions", "pool": "100.64.0.0/10", "results": per_size, "growth": growth })
    );
}

/// The instruction count of each phase, in order, from callgrind's dumps: one dump as each `phase_*` is
/// entered, so the dump taken on entering `phase_done` holds the phase that just ran, and nothing else.
fn read_phase_counts(dir: &Path) -> Vec<(String, u64)> {
    let mut dumps: Vec<(u32, String)> = std::fs::read_dir(dir)
        .expect("callgrind output")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let part = name.strip_prefix("out.")?.parse().ok()?;
            Some((part, std::fs::read_to_string(dir.join(&name)).ok()?))
        })
        .collect();
    dumps.sort_by_key(|(part, _)| *part);
    let mut counts = Vec::new();
    let mut running = None;
    for (_, text) in dumps {
        let entered = text
            .lines()
            .find_map(|l| l.strip_prefix("desc: Trigger: --dump-before=bench::"))
            .filter(|f| PHASE_FUNCTIONS.contains(f))
            .expect("a dump on entering a phase function");
        let instructions: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("summary: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("dump summary");
        match entered {
            "phase_done" => counts.push((
                running.take().expect("a phase before phase_done"),
                instructions,
            )),
            phase => {
                assert!(running.is_none(), "{phase} entered inside another phase");
                running = Some(phase.trim_start_matches("phase_").to_string());
            }
        }
    }
    counts
}
