// tcp_echo peer in Go: net.Listen on 127.0.0.1, one goroutine per connection copying what it
// reads back to the socket. Usage: go-echo PORT [THREADS]: GOMAXPROCS=1 without THREADS
// (impl "go_p1", bench/run_net.sh), GOMAXPROCS=THREADS with it (impl "go", tcp_echo_mt,
// bench/run_mt.sh). Runs until killed.
package main

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			// Write loops internally until all n bytes are written or an error occurs.
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	threads := 1
	if len(os.Args) == 3 {
		t, err := strconv.Atoi(os.Args[2])
		if err != nil || t < 1 {
			fmt.Fprintln(os.Stderr, "go-echo: bad THREADS:", os.Args[2])
			os.Exit(2)
		}
		threads = t
	} else if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go-echo PORT [THREADS]")
		os.Exit(2)
	}
	runtime.GOMAXPROCS(threads)
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	// net.Listen takes its backlog from /proc/sys/net/core/somaxconn (4096 here); Go has no
	// portable way to pass one.
	l, err := net.Listen("tcp", "127.0.0.1:"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-echo:", err)
		os.Exit(1)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			// EMFILE and the like: back off instead of spinning.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		// Go sets TCP_NODELAY on accepted TCP connections by default.
		go serve(c)
	}
}
