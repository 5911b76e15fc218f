//! The multi-core workloads of bench-workloads.md on Tokio's multi_thread runtime with N
//! worker threads (impl "tokio_mt", mode "stealing": its workers steal each other's tasks).
//! Each workload's driver is itself a spawned task (block_on's future runs on the calling
//! thread, not on a worker), so what it spawns lands in a worker's queue, as a task spawning
//! in Go or weft does. One thread count per process: asked for several, the peer runs itself
//! once per count, so that a count's peak RSS never carries over into the next.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{self, JoinHandle};

use crate::{per_op_ns, proc_status_bytes};

const IMPL: &str = "tokio_mt";

fn emit(workload: &str, n: u64, value: f64, unit: &str, threads: usize, extra: &str) {
    println!(
        "{{\"impl\":\"{IMPL}\",\"workload\":\"{workload}\",\"n\":{n},\"value\":{value:.3},\
         \"unit\":\"{unit}\",\"threads\":{threads},\"mode\":\"stealing\"{extra}}}"
    );
    let _ = std::io::stdout().flush();
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs workload `w` at each thread count (default 1 and 2), each in a child process when
/// there are several; returns the exit status.
pub fn run(w: &str, n: Option<u64>, threads: &[usize]) -> i32 {
    let threads: Vec<usize> = if threads.is_empty() { vec![1, 2] } else { threads.to_vec() };
    if threads.len() > 1 {
        let exe = std::env::current_exe().expect("current_exe");
        let mut status = 0;
        for t in threads {
            let mut cmd = std::process::Command::new(&exe);
            cmd.arg(w).arg("--threads").arg(t.to_string());
            if let Some(n) = n {
                cmd.arg(n.to_string());
            }
            match cmd.status() {
                Ok(s) if s.success() => {}
                other => {
                    eprintln!("tokio-peer {w} --threads {t}: {other:?}");
                    status = 1;
                }
            }
        }
        return status;
    }
    let t = threads[0];
    let rt = runtime(t);
    let w = w.to_string();
    rt.block_on(async move {
        tokio::spawn(async move {
            match w.as_str() {
                "spawn_join_mt" => spawn_join_mt(n.unwrap_or(1_000_000), t).await,
                "fanout_tree" => fanout_tree(n.unwrap_or(20) as u32, t).await,
                "chan_mpmc" => chan_mpmc(n.unwrap_or(10_000_000), t).await,
                "sched_latency" => sched_latency(n.unwrap_or(10_000), t).await,
                _ => unreachable!(),
            }
        })
        .await
        .unwrap()
    });
    0
}

/// spawn_join_mt: one task spawns n tasks that each add 1 to a shared counter, then awaits
/// every JoinHandle; the other workers steal from the spawner's queue.
async fn spawn_join_mt(n: u64, threads: usize) {
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
    let extra = format!(",\"rss_bytes\":{}", proc_status_bytes("VmHWM"));
    emit("spawn_join_mt", n, per_op_ns(el, n), "ns/task", threads, &extra);
}

/// A node of the fanout tree: boxed, since an async fn cannot recurse into itself unboxed.
fn fan(depth: u32, count: Arc<AtomicU64>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        count.fetch_add(1, Ordering::Relaxed);
        if depth == 0 {
            return;
        }
        let a = tokio::spawn(fan(depth - 1, count.clone()));
        let b = tokio::spawn(fan(depth - 1, count));
        a.await.unwrap();
        b.await.unwrap();
    })
}

/// fanout_tree: every node spawns 2 children and joins them, to the given depth.
async fn fanout_tree(depth: u32, threads: usize) {
    let count = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    fan(depth, count.clone()).await;
    let el = t0.elapsed();
    let want = (2u64 << depth) - 1; // the nodes of a full binary tree of that depth
    assert_eq!(count.load(Ordering::Relaxed), want);
    let extra = format!(",\"depth\":{depth},\"rss_bytes\":{}", proc_status_bytes("VmHWM"));
    emit("fanout_tree", want, el.as_secs_f64() * 1e3, "ms_wall", threads, &extra);
}

/// chan_mpmc: N producers and N consumers share one channel of capacity 1,024, n messages.
/// Tokio's channels have one receiver, so the consumers share it behind an async mutex (the
/// usual idiom): each takes the lock, awaits one message, and lets go.
async fn chan_mpmc(n: u64, threads: usize) {
    let (tx, rx) = mpsc::channel::<u64>(1024);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let t0 = Instant::now();
    let mut prod = Vec::new();
    let mut cons = Vec::new();
    for i in 0..threads as u64 {
        let share = n / threads as u64 + u64::from(i < n % threads as u64);
        let tx = tx.clone();
        prod.push(tokio::spawn(async move {
            for k in 0..share {
                tx.send(k).await.unwrap();
            }
        }));
        let rx = rx.clone();
        cons.push(tokio::spawn(async move {
            let mut mine = 0u64;
            while rx.lock().await.recv().await.is_some() {
                mine += 1;
            }
            mine
        }));
    }
    drop(tx); // the channel closes when the last producer's sender goes
    for p in prod {
        p.await.unwrap();
    }
    let mut got = 0;
    for c in cons {
        got += c.await.unwrap();
    }
    let el = t0.elapsed();
    assert_eq!(got, n);
    emit("chan_mpmc", n, per_op_ns(el, n), "ns/msg", threads, "");
}

/// Sorts v (ns) and returns its p50, p99 and max in µs, ranked as weft's bench_sched_latency
/// ranks them.
fn percentiles_us(v: &mut [u64]) -> (f64, f64, f64) {
    let n = v.len();
    if n == 0 {
        return (0.0, 0.0, 0.0);
    }
    v.sort_unstable();
    (v[n / 2] as f64 / 1e3, v[(n * 99).div_ceil(100) - 1] as f64 / 1e3, v[n - 1] as f64 / 1e3)
}

fn involuntary_switches() -> i64 {
    // SAFETY: getrusage fills a local struct.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru.ru_nivcsw
    }
}

/// sched_latency, N-worker form: 1,000 tasks yield in a loop to keep every worker busy while
/// a probe sleeps 1 ms, n times, and records how late it resumes (real clock minus deadline).
/// Tokio's timer wheel has 1 ms slots: a sleep ends at the first tick at or after its
/// deadline, which the lateness includes.
async fn sched_latency(n: u64, threads: usize) {
    const NBUSY: usize = 1000;
    let stop = Arc::new(AtomicBool::new(false));
    let mut busy = Vec::with_capacity(NBUSY);
    let t_busy = Instant::now();
    for _ in 0..NBUSY {
        let stop = stop.clone();
        busy.push(tokio::spawn(async move {
            let mut mine = 0u64;
            while !stop.load(Ordering::Relaxed) {
                mine += 1;
                task::yield_now().await;
            }
            mine
        }));
    }
    let probe = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await; // every busy task has run once
        let iv0 = involuntary_switches();
        let mut late = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let deadline = Instant::now() + Duration::from_millis(1);
            tokio::time::sleep_until(deadline.into()).await;
            late.push(Instant::now().saturating_duration_since(deadline).as_nanos() as u64);
        }
        (late, involuntary_switches() - iv0)
    });
    let (mut late, preempted) = probe.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let busy_wall = t_busy.elapsed();
    let mut nyields = 0;
    for b in busy {
        nyields += b.await.unwrap();
    }
    let (p50, p99, max) = percentiles_us(&mut late);
    // Yields over the busy tasks' whole life: wall time per yield of the process, all
    // workers together.
    let extra = format!(
        ",\"p50_us\":{p50:.2},\"p99_us\":{p99:.2},\"max_us\":{max:.2},\"busy_tasks\":{NBUSY},\
         \"busy_ns_per_yield\":{:.1},\"preempted\":{preempted}",
        busy_wall.as_nanos() as f64 / nyields.max(1) as f64
    );
    emit("sched_latency", n, p99, "us_p99", threads, &extra);
}

async fn serve_echo(mut s: TcpStream) {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if s.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// blocked_worker: an echo server on 127.0.0.1:port (as bench/peers/tcp_echo/tokio) beside a
/// task that spins without yielding for 100 ms of every 200 ms and a ticker that sleeps 1 ms
/// in a loop and records how late it wakes. Runs until SIGTERM or SIGINT, then prints the
/// ticker's lateness over its whole life; the runner (bench/run_mt.sh) drives the echo load
/// and adds the echo figures to the line.
pub fn blocked_worker(port: u16, threads: usize) -> i32 {
    crate::raise_nofile();
    let rt = runtime(threads);
    rt.block_on(async move {
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).unwrap();
            let mut int = signal(SignalKind::interrupt()).unwrap();
            let sock = TcpSocket::new_v4().unwrap();
            sock.set_reuseaddr(true).unwrap();
            if let Err(e) = sock.bind(([127, 0, 0, 1], port).into()) {
                eprintln!("tokio-peer blocked_worker: bind: {e}");
                std::process::exit(1);
            }
            let listener = sock.listen(4096).unwrap();
            tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((s, _)) => {
                            let _ = s.set_nodelay(true);
                            tokio::spawn(serve_echo(s));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
            });
            let spins = Arc::new(AtomicU64::new(0));
            let s2 = spins.clone();
            tokio::spawn(async move {
                loop {
                    let start = Instant::now();
                    while start.elapsed() < Duration::from_millis(100) {
                        std::hint::spin_loop();
                    }
                    s2.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep_until((start + Duration::from_millis(200)).into()).await;
                }
            });
            let late = Arc::new(Mutex::new(Vec::<u64>::with_capacity(1 << 16)));
            let l2 = late.clone();
            tokio::spawn(async move {
                loop {
                    let deadline = Instant::now() + Duration::from_millis(1);
                    tokio::time::sleep_until(deadline.into()).await;
                    let d = Instant::now().saturating_duration_since(deadline).as_nanos() as u64;
                    l2.lock().unwrap().push(d);
                }
            });
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let mut late = late.lock().unwrap();
            let (p50, p99, max) = percentiles_us(&mut late);
            let extra = format!(
                ",\"p50_us\":{p50:.2},\"p99_us\":{p99:.2},\"max_us\":{max:.2},\"spins\":{}",
                spins.load(Ordering::Relaxed)
            );
            emit("blocked_worker", late.len() as u64, p99, "us_p99", threads, &extra);
            std::process::exit(0);
        })
        .await
        .unwrap()
    });
    0
}
