// Go peer for weft's benchmark workloads (bench-workloads.md); prints one JSON line per run.
// The single-thread ones run with GOMAXPROCS=1 (impl "go_p1"); the multi-core ones
// (mt.go) with GOMAXPROCS=N (impl "go", with "threads" and "mode" fields).
// Usage: go-peer WORKLOAD [n] [--threads N]... [--port P]
//
//	single-thread: yield spawn_join sleepers_1m timers_1m chan_pingpong
//	multi-core: spawn_join_mt fanout_tree chan_mpmc sched_latency (default --threads 1
//	--threads 2, each count in a fresh process) and blocked_worker (--port P, default
//	--threads 2; an echo server that runs until SIGTERM, see mt.go)
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var impl = "go_p1" // "go" for the multi-core workloads

var sink int64 // written at the end of each workload so the work stays observable

// procStatusBytes returns a "Vm*:  N kB" field of /proc/self/status in bytes (0 if absent).
func procStatusBytes(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, field+":") {
			parts := strings.Fields(line[len(field)+1:])
			if len(parts) >= 1 {
				kb, _ := strconv.ParseInt(parts[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

func emit(workload string, n int, value float64, unit string, extra string) {
	fmt.Printf("{\"impl\":%q,\"workload\":%q,\"n\":%d,\"value\":%.3f,\"unit\":%q%s}\n",
		impl, workload, n, value, unit, extra)
}

// yield: two goroutines each call runtime.Gosched in a loop, n yields in total.
func benchYield(n int) {
	per := n / 2
	var wg sync.WaitGroup
	wg.Add(2)
	var counts [2]int64
	t0 := time.Now()
	for g := 0; g < 2; g++ {
		go func(g int) {
			for i := 0; i < per; i++ {
				runtime.Gosched()
				counts[g]++
			}
			wg.Done()
		}(g)
	}
	wg.Wait()
	el := time.Since(t0)
	sink = counts[0] + counts[1]
	emit("yield", per*2, float64(el.Nanoseconds())/float64(per*2), "ns/yield", "")
}

// spawn_join: n goroutines each add 1 to a shared counter; wait for all with a WaitGroup.
func benchSpawnJoin(n int) {
	var counter int64
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			atomic.AddInt64(&counter, 1)
			wg.Done()
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	if counter != int64(n) {
		fmt.Fprintf(os.Stderr, "spawn_join: counter %d != %d\n", counter, n)
		os.Exit(1)
	}
	sink = counter
	emit("spawn_join", n, float64(el.Nanoseconds())/float64(n), "ns/task", "")
}

// splitmix64 step: the same cheap PRNG the tokio peer uses, seeded identically.
func splitmix64(s *uint64) uint64 {
	*s += 0x9e3779b97f4a7c15
	z := *s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// sleepers: n goroutines alive at once; each sleeps a fixed 1 s (random=false) or a
// uniformly random 0..1000 ms (random=true), then exits. Reports wall seconds, peak RSS, and
// spawn_s (time to run the spawn loop: if it exceeds the sleep, not all n were alive at once).
func benchSleepers(workload string, n int, random bool) {
	rssBefore := procStatusBytes("VmRSS")
	var done int64
	var wg sync.WaitGroup
	seed := uint64(42)
	t0 := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		d := time.Second
		if random {
			d = time.Duration(splitmix64(&seed)%1001) * time.Millisecond
		}
		go func(d time.Duration) {
			time.Sleep(d)
			atomic.AddInt64(&done, 1)
			wg.Done()
		}(d)
	}
	spawned := time.Since(t0)
	wg.Wait()
	el := time.Since(t0)
	peak := procStatusBytes("VmHWM")
	if done != int64(n) {
		fmt.Fprintf(os.Stderr, "%s: done %d != %d\n", workload, done, n)
		os.Exit(1)
	}
	sink = done
	extra := fmt.Sprintf(",\"rss_bytes\":%d,\"bytes_per_task\":%.1f,\"spawn_s\":%.3f", peak,
		float64(peak-rssBefore)/float64(n), spawned.Seconds())
	emit(workload, n, el.Seconds(), "s", extra)
}

// chan_pingpong: two goroutines pass an int back and forth over unbuffered channels.
func benchChanPingpong(n int) {
	ping := make(chan int)
	pong := make(chan int)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		close(pong)
	}()
	t0 := time.Now()
	v := 0
	for i := 0; i < n; i++ {
		ping <- v
		v = <-pong
	}
	el := time.Since(t0)
	close(ping)
	if v != n {
		fmt.Fprintf(os.Stderr, "chan_pingpong: %d != %d\n", v, n)
		os.Exit(1)
	}
	sink = int64(v)
	emit("chan_pingpong", n, float64(el.Nanoseconds())/float64(n), "ns/roundtrip", "")
}

func main() {
	runtime.GOMAXPROCS(1)
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go-peer WORKLOAD [n] [--threads N]... [--port P]")
		os.Exit(2)
	}
	w := os.Args[1]
	n := -1
	var threads []int
	port := 0
	for i := 2; i < len(os.Args); i++ {
		a := os.Args[i]
		if (a == "--threads" || a == "--port") && i+1 < len(os.Args) {
			v, err := strconv.Atoi(os.Args[i+1])
			if err != nil || v < 1 {
				fmt.Fprintln(os.Stderr, "bad", a, os.Args[i+1])
				os.Exit(2)
			}
			if a == "--threads" {
				threads = append(threads, v)
			} else {
				port = v
			}
			i++
			continue
		}
		v, err := strconv.Atoi(a)
		if err != nil || v < 1 {
			fmt.Fprintln(os.Stderr, "bad n:", a)
			os.Exit(2)
		}
		n = v
	}
	def := func(d int) int {
		if n > 0 {
			return n
		}
		return d
	}
	switch w {
	case "yield":
		benchYield(def(10000000))
	case "spawn_join":
		benchSpawnJoin(def(1000000))
	case "sleepers_1m":
		benchSleepers(w, def(1000000), false)
	case "timers_1m":
		benchSleepers(w, def(1000000), true)
	case "chan_pingpong":
		benchChanPingpong(def(1000000))
	case "spawn_join_mt", "fanout_tree", "chan_mpmc", "sched_latency":
		os.Exit(runMT(w, n, threads))
	case "blocked_worker":
		if len(threads) == 0 {
			threads = []int{2}
		}
		if port == 0 || len(threads) != 1 {
			fmt.Fprintln(os.Stderr, "usage: go-peer blocked_worker --port P [--threads N]")
			os.Exit(2)
		}
		benchBlockedWorker(port, threads[0])
	default:
		fmt.Fprintln(os.Stderr, "unknown workload:", w)
		os.Exit(2)
	}
}
