//! Tokio peer for weft's benchmark workloads (bench-workloads.md); prints one JSON line per
//! run. The single-thread ones run on a current_thread runtime (impl "tokio_ct"); the
//! multi-core ones (mt.rs) on a multi_thread runtime of N workers (impl "tokio_mt", with
//! "threads" and "mode" fields).
//! Usage: tokio-peer WORKLOAD [n] [--threads N]... [--port P]
//!   single-thread: yield spawn_join sleepers_1m timers_1m chan_pingpong
//!   multi-core: spawn_join_mt fanout_tree chan_mpmc sched_latency (default --threads 1
//!   --threads 2, each count in a fresh process) and blocked_worker (--port P, default
//!   --threads 2; an echo server that runs until SIGTERM, see mt.rs)

mod mt;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};
use tokio::task::{self, JoinHandle, LocalSet};

const IMPL: &str = "tokio_ct";

/// A "Vm*:  N kB" field of /proc/self/status, in bytes (0 if absent).
pub(crate) fn proc_status_bytes(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            let kb: u64 = rest.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
            return kb * 1024;
        }
    }
    0
}

/// Raises the soft limit of open files to the hard one (the echo servers' connections).
pub(crate) fn raise_nofile() {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

fn emit(workload: &str, n: u64, value: f64, unit: &str, extra: &str) {
    println!(
        "{{\"impl\":\"{IMPL}\",\"workload\":\"{workload}\",\"n\":{n},\"value\":{value:.3},\"unit\":\"{unit}\"{extra}}}"
    );
}

pub(crate) fn per_op_ns(el: Duration, n: u64) -> f64 {
    el.as_nanos() as f64 / n as f64
}

/// yield: two tasks each call yield_now in a loop, n yields in total.
async fn bench_yield(n: u64) {
    let per = n / 2;
    let t0 = Instant::now();
    let a = tokio::spawn(async move {
        let mut c = 0u64;
        for _ in 0..per {
            task::yield_now().await;
            c += 1;
        }
        c
    });
    let b = tokio::spawn(async move {
        let mut c = 0u64;
        for _ in 0..per {
            task::yield_now().await;
            c += 1;
        }
        c
    });
    let total = a.await.unwrap() + b.await.unwrap();
    let el = t0.elapsed();
    assert_eq!(total, per * 2);
    emit("yield", per * 2, per_op_ns(el, per * 2), "ns/yield", "");
}

/// spawn_join, default variant: spawn_local on a LocalSet, tasks bump an Rc<Cell<u64>>,
/// then every JoinHandle is awaited (measured faster than tokio::spawn + AtomicU64).
async fn bench_spawn_join_local(n: u64) -> Duration {
    let counter = Rc::new(Cell::new(0u64));
    let t0 = Instant::now();
    let mut handles: Vec<JoinHandle<()>> = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let c = counter.clone();
        handles.push(task::spawn_local(async move {
            c.set(c.get() + 1);
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let el = t0.elapsed();
    assert_eq!(counter.get(), n);
    el
}

/// spawn_join, alternative variant: tokio::spawn (Send tasks) bumping a shared AtomicU64.
async fn bench_spawn_join_atomic(n: u64) -> Duration {
    let counter = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut handles: Vec<JoinHandle<()>> = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let c = counter.clone();
        handles.push(tokio::spawn(async move {
            c.fetch_add(1, Ordering::Relaxed);
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let el = t0.elapsed();
    assert_eq!(counter.load(Ordering::Relaxed), n);
    el
}

/// splitmix64 step: the same cheap PRNG the Go peer uses, seeded identically.
fn splitmix64(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e3779b97f4a7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

/// sleepers: n tasks alive at once, each sleeps 1 s (random=false) or a uniformly random
/// 0..1000 ms (random=true) and exits; the last one to finish wakes the waiter.
/// Reports wall seconds, peak RSS (VmHWM) and spawn_s (time to run the spawn loop).
async fn bench_sleepers(workload: &str, n: u64, random: bool) {
    let rss_before = proc_status_bytes("VmRSS");
    let done = Rc::new(Cell::new(0u64));
    let all_done = Rc::new(Notify::new());
    let mut seed = 42u64;
    let t0 = Instant::now();
    for _ in 0..n {
        let d = if random {
            Duration::from_millis(splitmix64(&mut seed) % 1001)
        } else {
            Duration::from_secs(1)
        };
        let (done, all_done) = (done.clone(), all_done.clone());
        task::spawn_local(async move {
            tokio::time::sleep(d).await;
            done.set(done.get() + 1);
            if done.get() == n {
                all_done.notify_one();
            }
        });
    }
    let spawned = t0.elapsed();
    all_done.notified().await;
    let el = t0.elapsed();
    let peak = proc_status_bytes("VmHWM");
    assert_eq!(done.get(), n);
    let extra = format!(
        ",\"rss_bytes\":{peak},\"bytes_per_task\":{:.1},\"spawn_s\":{:.3}",
        peak.saturating_sub(rss_before) as f64 / n as f64,
        spawned.as_secs_f64()
    );
    emit(workload, n, el.as_secs_f64(), "s", &extra);
}

/// chan_pingpong: two tasks pass an integer back and forth over mpsc channels of capacity 1.
async fn bench_chan_pingpong(n: u64) {
    let (ping_tx, mut ping_rx) = mpsc::channel::<u64>(1);
    let (pong_tx, mut pong_rx) = mpsc::channel::<u64>(1);
    let t0 = Instant::now();
    let ponger = tokio::spawn(async move {
        while let Some(v) = ping_rx.recv().await {
            if pong_tx.send(v + 1).await.is_err() {
                break;
            }
        }
    });
    let pinger = tokio::spawn(async move {
        let mut v = 0u64;
        for _ in 0..n {
            ping_tx.send(v).await.unwrap();
            v = pong_rx.recv().await.unwrap();
        }
        v
    });
    let v = pinger.await.unwrap();
    let el = t0.elapsed();
    ponger.await.unwrap();
    assert_eq!(v, n);
    emit("chan_pingpong", n, per_op_ns(el, n), "ns/roundtrip", "");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 {
        eprintln!("usage: tokio-peer WORKLOAD [n] [--threads N]... [--port P]");
        std::process::exit(2);
    }
    let bad = |what: &str, v: &str| -> ! {
        eprintln!("bad {what}: {v}");
        std::process::exit(2)
    };
    let mut n_override: Option<u64> = None;
    let mut threads: Vec<usize> = Vec::new();
    let mut port: Option<u16> = None;
    let mut i = 2;
    while i < args.len() {
        let a = args[i].as_str();
        if (a == "--threads" || a == "--port") && i + 1 < args.len() {
            let v = &args[i + 1];
            if a == "--threads" {
                threads.push(v.parse().ok().filter(|&t| t > 0).unwrap_or_else(|| bad(a, v)));
            } else {
                port = Some(v.parse().ok().filter(|&p| p > 0).unwrap_or_else(|| bad(a, v)));
            }
            i += 2;
            continue;
        }
        n_override = Some(a.parse().ok().filter(|&v| v > 0).unwrap_or_else(|| bad("n", a)));
        i += 1;
    }
    let n = |default: u64| n_override.unwrap_or(default);

    let w = args[1].as_str();
    match w {
        "spawn_join_mt" | "fanout_tree" | "chan_mpmc" | "sched_latency" => {
            std::process::exit(mt::run(w, n_override, &threads))
        }
        "blocked_worker" => {
            if threads.is_empty() {
                threads.push(2);
            }
            match port {
                Some(p) if threads.len() == 1 => std::process::exit(mt::blocked_worker(p, threads[0])),
                _ => {
                    eprintln!("usage: tokio-peer blocked_worker --port P [--threads N]");
                    std::process::exit(2)
                }
            }
        }
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = LocalSet::new();
    local.block_on(&rt, async {
        match w {
            "yield" => bench_yield(n(10_000_000)).await,
            "spawn_join" => {
                let n = n(1_000_000);
                // TOKIO_PEER_SPAWN=atomic selects the tokio::spawn + AtomicU64 variant.
                let el = if std::env::var("TOKIO_PEER_SPAWN").as_deref() == Ok("atomic") {
                    bench_spawn_join_atomic(n).await
                } else {
                    bench_spawn_join_local(n).await
                };
                emit("spawn_join", n, per_op_ns(el, n), "ns/task", "");
            }
            "sleepers_1m" => bench_sleepers(w, n(1_000_000), false).await,
            "timers_1m" => bench_sleepers(w, n(1_000_000), true).await,
            "chan_pingpong" => bench_chan_pingpong(n(1_000_000)).await,
            _ => {
                eprintln!("unknown workload: {w}");
                std::process::exit(2);
            }
        }
    });
}
