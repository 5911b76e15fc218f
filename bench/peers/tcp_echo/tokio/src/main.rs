//! tcp_echo peer on Tokio: a TcpListener on 127.0.0.1 (backlog 4096) and one task per
//! connection that reads into a buffer and write_all()s it back.
//! Usage: tcp-echo-tokio PORT [THREADS]: the current_thread runtime without THREADS (impl
//! "tokio_ct", bench/run_net.sh), a multi_thread runtime of THREADS workers with it (impl
//! "tokio_mt", tcp_echo_mt, bench/run_mt.sh). Runs until killed.
use std::net::{Ipv4Addr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn raise_nofile() {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

async fn serve(mut s: TcpStream) {
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: tcp-echo-tokio PORT [THREADS]");
        std::process::exit(2)
    };
    let port: u16 = match args.get(1).map(|p| p.parse()) {
        Some(Ok(p)) if args.len() <= 3 => p,
        _ => usage(),
    };
    let threads: Option<usize> = args.get(2).map(|t| match t.parse() {
        Ok(t) if t > 0 => t,
        _ => usage(),
    });
    raise_nofile();
    let rt = match threads {
        None => tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap(),
        Some(t) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(t)
            .enable_io()
            .build()
            .unwrap(),
    };
    rt.block_on(async move {
        let sock = TcpSocket::new_v4().unwrap();
        sock.set_reuseaddr(true).unwrap();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        if let Err(e) = sock.bind(addr) {
            eprintln!("tcp-echo-tokio: bind: {}", e);
            std::process::exit(1);
        }
        let listener = sock.listen(4096).unwrap();
        loop {
            match listener.accept().await {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(true);
                    tokio::spawn(serve(s));
                }
                // EMFILE and the like: back off instead of spinning (no timer driver here).
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    });
}
