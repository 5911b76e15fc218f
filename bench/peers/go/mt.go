// The multi-core workloads of bench-workloads.md on Go's scheduler with GOMAXPROCS=N (impl
// "go", mode "stealing": Go's Ps steal each other's goroutines). One thread count per
// process: asked for several, the peer runs itself once per count, so that a count's peak
// RSS and heap never carry over into the next.
package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func mtExtra(threads int, more string) string {
	return fmt.Sprintf(",\"threads\":%d,\"mode\":\"stealing\"%s", threads, more)
}

// runMT runs workload w at each thread count (default 1 and 2), each in a child process
// when there are several; returns the exit status.
func runMT(w string, n int, threads []int) int {
	if len(threads) == 0 {
		threads = []int{1, 2}
	}
	if len(threads) > 1 {
		status := 0
		for _, t := range threads {
			args := []string{w, "--threads", strconv.Itoa(t)}
			if n > 0 {
				args = append(args, strconv.Itoa(n))
			}
			cmd := exec.Command(os.Args[0], args...)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "go-peer %s --threads %d: %v\n", w, t, err)
				status = 1
			}
		}
		return status
	}
	t := threads[0]
	runtime.GOMAXPROCS(t)
	impl = "go"
	def := func(d int) int {
		if n > 0 {
			return n
		}
		return d
	}
	switch w {
	case "spawn_join_mt":
		benchSpawnJoinMT(def(1000000), t)
	case "fanout_tree":
		benchFanoutTree(def(20), t)
	case "chan_mpmc":
		benchChanMPMC(def(10000000), t)
	case "sched_latency":
		benchSchedLatency(def(10000), t)
	}
	return 0
}

// spawn_join_mt: one goroutine spawns n goroutines that each add 1 to a shared counter, then
// waits for all of them; the other Ps steal from the spawner's run queue.
func benchSpawnJoinMT(n, threads int) {
	var counter int64
	var wg sync.WaitGroup
	var el time.Duration
	done := make(chan struct{})
	go func() { // the spawner is a goroutine like any other, not the main one
		t0 := time.Now()
		wg.Add(n)
		for i := 0; i < n; i++ {
			go func() {
				atomic.AddInt64(&counter, 1)
				wg.Done()
			}()
		}
		wg.Wait()
		el = time.Since(t0)
		close(done)
	}()
	<-done
	if counter != int64(n) {
		fmt.Fprintf(os.Stderr, "spawn_join_mt: counter %d != %d\n", counter, n)
		os.Exit(1)
	}
	sink = counter
	emit("spawn_join_mt", n, float64(el.Nanoseconds())/float64(n), "ns/task",
		mtExtra(threads, fmt.Sprintf(",\"rss_bytes\":%d", procStatusBytes("VmHWM"))))
}

func fan(depth int, count *int64) {
	atomic.AddInt64(count, 1)
	if depth == 0 {
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { fan(depth-1, count); wg.Done() }()
	go func() { fan(depth-1, count); wg.Done() }()
	wg.Wait()
}

// fanout_tree: every node spawns 2 children and joins them, to the given depth.
func benchFanoutTree(depth, threads int) {
	var count int64
	t0 := time.Now()
	fan(depth, &count)
	el := time.Since(t0)
	want := int64(2)<<depth - 1 // the nodes of a full binary tree of that depth
	if count != want {
		fmt.Fprintf(os.Stderr, "fanout_tree: nodes %d != %d\n", count, want)
		os.Exit(1)
	}
	sink = count
	emit("fanout_tree", int(want), float64(el.Nanoseconds())/1e6, "ms_wall",
		mtExtra(threads, fmt.Sprintf(",\"depth\":%d,\"rss_bytes\":%d", depth,
			procStatusBytes("VmHWM"))))
}

// chan_mpmc: N producers and N consumers share one channel of capacity 1,024; n messages.
func benchChanMPMC(n, threads int) {
	ch := make(chan int64, 1024)
	var got int64
	var prod, cons sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < threads; i++ {
		share := n / threads
		if i < n%threads {
			share++
		}
		prod.Add(1)
		go func(share int) {
			for k := 0; k < share; k++ {
				ch <- int64(k)
			}
			prod.Done()
		}(share)
		cons.Add(1)
		go func() {
			var mine int64
			for range ch {
				mine++
			}
			atomic.AddInt64(&got, mine)
			cons.Done()
		}()
	}
	prod.Wait()
	close(ch) // the consumers drain what is left, then see it closed
	cons.Wait()
	el := time.Since(t0)
	if got != int64(n) {
		fmt.Fprintf(os.Stderr, "chan_mpmc: messages %d != %d\n", got, n)
		os.Exit(1)
	}
	sink = got
	emit("chan_mpmc", n, float64(el.Nanoseconds())/float64(n), "ns/msg", mtExtra(threads, ""))
}

// percentilesUs sorts v (ns) and returns its p50, p99 and max in µs, ranked as weft's
// bench_sched_latency ranks them.
func percentilesUs(v []int64) (p50, p99, max float64) {
	n := len(v)
	if n == 0 {
		return 0, 0, 0
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return float64(v[n/2]) / 1e3, float64(v[(n*99+99)/100-1]) / 1e3, float64(v[n-1]) / 1e3
}

func involuntarySwitches() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Nivcsw
}

// sched_latency, N-worker form: 1,000 goroutines yield in a loop to keep every P busy while
// a probe sleeps 1 ms, n times, and records how late it resumes (real clock minus deadline).
func benchSchedLatency(n, threads int) {
	const nbusy = 1000
	var stop int32
	var nyields int64
	var busy sync.WaitGroup
	busy.Add(nbusy)
	for i := 0; i < nbusy; i++ {
		go func() {
			var mine int64
			for atomic.LoadInt32(&stop) == 0 {
				mine++
				runtime.Gosched()
			}
			atomic.AddInt64(&nyields, mine)
			busy.Done()
		}()
	}
	late := make([]int64, n)
	done := make(chan struct{})
	var el time.Duration
	var iv0, iv1 int64
	go func() { // the probe: a goroutine among the busy ones
		time.Sleep(10 * time.Millisecond) // every busy goroutine has run once
		iv0 = involuntarySwitches()
		t0 := time.Now()
		for i := 0; i < n; i++ {
			deadline := time.Now().Add(time.Millisecond)
			time.Sleep(time.Millisecond)
			late[i] = int64(time.Since(deadline))
		}
		el = time.Since(t0)
		iv1 = involuntarySwitches()
		atomic.StoreInt32(&stop, 1)
		close(done)
	}()
	<-done
	busy.Wait()
	p50, p99, max := percentilesUs(late)
	// Yields over the whole busy life (10 ms more than the probe's window): wall time per
	// yield of the process, all Ps together.
	nsPerYield := float64(el.Nanoseconds()+10e6) / float64(nyields)
	emit("sched_latency", n, p99, "us_p99", mtExtra(threads, fmt.Sprintf(
		",\"p50_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.2f,\"busy_tasks\":%d,"+
			"\"busy_ns_per_yield\":%.1f,\"preempted\":%d", p50, p99, max, nbusy, nsPerYield,
		iv1-iv0)))
}

func serveEcho(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// blocked_worker: an echo server on 127.0.0.1:port (as bench/peers/tcp_echo/go) beside a
// goroutine that spins without yielding for 100 ms of every 200 ms and a ticker that sleeps
// 1 ms in a loop and records how late it wakes. Runs until SIGTERM or SIGINT, then prints
// the ticker's lateness over its whole life; the runner (bench/run_mt.sh) drives the echo
// load and adds the echo figures to the line.
func benchBlockedWorker(port, threads int) {
	runtime.GOMAXPROCS(threads)
	impl = "go"
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-peer blocked_worker:", err)
		os.Exit(1)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			go serveEcho(c)
		}
	}()
	var spins int64
	go func() {
		for {
			start := time.Now()
			for time.Since(start) < 100*time.Millisecond {
			}
			atomic.AddInt64(&spins, 1)
			time.Sleep(time.Until(start.Add(200 * time.Millisecond)))
		}
	}()
	var mu sync.Mutex
	late := make([]int64, 0, 1<<16)
	go func() {
		for {
			deadline := time.Now().Add(time.Millisecond)
			time.Sleep(time.Millisecond)
			d := int64(time.Since(deadline))
			mu.Lock()
			late = append(late, d)
			mu.Unlock()
		}
	}()
	<-sigs
	mu.Lock()
	p50, p99, max := percentilesUs(late)
	emit("blocked_worker", len(late), p99, "us_p99", mtExtra(threads, fmt.Sprintf(
		",\"p50_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.2f,\"spins\":%d", p50, p99, max,
		atomic.LoadInt64(&spins))))
	os.Exit(0)
}
