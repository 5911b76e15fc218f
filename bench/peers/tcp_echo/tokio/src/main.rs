//! tcp_echo peer on Tokio's current_thread runtime (impl "tokio_ct"): a TcpListener on
//! 127.0.0.1 (backlog 4096) and one task per connection that reads into a buffer and
//! write_all()s it back. Usage: tcp-echo-tokio PORT. Runs until killed.
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
    let port: u16 = match args.get(1).map(|p| p.parse()) {
        Some(Ok(p)) if args.len() == 2 => p,
        _ => {
            eprintln!("usage: tcp-echo-tokio PORT");
            std::process::exit(2);
        }
    };
    raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
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
