// Command nrload simulates the name-record traffic of N workers against one Redis server.
//
// Every simulated worker opens its own TCP connection(s), as real workers do, and replays the
// per-role command sequence of worker_commands.json (the one description of what real workers
// send; a Python integration test checks it against a real worker): its start-up round trips, then
// each periodic round trip (one pipeline) at its period. Commands are written as raw RESP; replies
// are parsed and discarded. Workers start evenly spread over -ramp seconds.
//
// Output on stdout: a line "measure start" when the measured window begins (after -ramp and
// -warmup), "measure end" when it ends, then one JSON line: round trips done vs intended in the
// window, client round-trip latency percentiles, and how late the clients ran against their
// schedule (if they fall behind, the offered load is lower than the intended one).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type trip struct {
	PeriodS float64    `json:"period_s"`
	Jitter  float64    `json:"jitter"`
	Conn    int        `json:"conn"`
	Trip    [][]string `json:"trip"`
}

type role struct {
	Start []trip `json:"start"`
	Every []trip `json:"every"`
}

type spec struct {
	KeepaliveTTLS float64         `json:"keepalive_ttl_s"`
	ProgressBytes map[string]int  `json:"progress_bytes"`
	Roles         map[string]role `json:"roles"`
}

// worker is one simulated worker: its role, index and placeholder values.
type worker struct {
	role  string
	index int
	vars  map[string]string
	lists map[string][]string
}

type stats struct {
	lat      []time.Duration // round-trip latencies inside the window
	late     []time.Duration // how late each periodic trip started, inside the window
	trips    int64
	commands int64
}

const index = "\x00srl-name-index" // srl_runtime/name_records/redis_backend.py INDEX_KEY

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "nrload:", err)
		os.Exit(1)
	}
}

func body(n int, role string, i int) string {
	s := fmt.Sprintf(`{"role":%q,"index":%d,"pid":%d,"running":true,"pad":"`, role, i, 100000+i)
	if len(s)+2 < n {
		s += strings.Repeat("x", n-len(s)-2)
	}
	return s + `"}`
}

func resp(b []byte, args []string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}

// expand turns a trip's commands into RESP bytes for worker w; returns the bytes and the command count.
func expand(t trip, w *worker, keys []string) ([]byte, int) {
	var out []byte
	for _, cmd := range t.Trip {
		var args []string
		for _, tok := range cmd {
			if l, ok := w.lists[tok]; ok {
				args = append(args, l...)
				continue
			}
			for _, k := range keys { // longest first: $progress_root before $progress
				if strings.Contains(tok, k) {
					tok = strings.ReplaceAll(tok, k, w.vars[k])
				}
			}
			args = append(args, tok)
		}
		out = resp(out, args)
	}
	return out, len(t.Trip)
}

func readReply(r *bufio.Reader) error {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 3 {
		return fmt.Errorf("short reply %q", line)
	}
	switch line[0] {
	case '+', ':':
		return nil
	case '-':
		return fmt.Errorf("redis error: %s", strings.TrimSpace(string(line[1:])))
	case '$':
		n, err := strconv.Atoi(string(line[1 : len(line)-2]))
		if err != nil || n < 0 {
			return err
		}
		_, err = r.Discard(n + 2)
		return err
	case '*':
		n, err := strconv.Atoi(string(line[1 : len(line)-2]))
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := readReply(r); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("bad reply %q", line)
}

type conn struct {
	c net.Conn
	r *bufio.Reader
}

func dial(addr string) *conn {
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		var c net.Conn
		c, err = net.Dial("tcp", addr)
		if err == nil {
			return &conn{c, bufio.NewReaderSize(c, 4096)} // replies larger than this are read through
		}
		time.Sleep(time.Duration(attempt+1) * 20 * time.Millisecond)
	}
	must(err)
	return nil
}

func (c *conn) call(b []byte, n int) {
	_, err := c.c.Write(b)
	must(err)
	for i := 0; i < n; i++ {
		must(readReply(c.r))
	}
}

// window is the measured interval; atomics hold unix nanoseconds.
var winStart, winEnd atomic.Int64

func inWindow(t time.Time) bool {
	n := t.UnixNano()
	return n >= winStart.Load() && n < winEnd.Load()
}

// runConn plays worker w's periodic trips on one connection until stop.
func runConn(c *conn, trips []trip, bufs [][]byte, ns []int, first []time.Time, stop time.Time, st *stats, rng *rand.Rand) {
	next := append([]time.Time(nil), first...)
	for {
		k := 0
		for i := range next {
			if next[i].Before(next[k]) {
				k = i
			}
		}
		due := next[k]
		if !due.Before(stop) {
			return
		}
		now := time.Now()
		if d := due.Sub(now); d > 0 {
			time.Sleep(d)
			now = time.Now()
		}
		t0 := time.Now()
		c.call(bufs[k], ns[k])
		t1 := time.Now()
		if inWindow(t0) {
			st.lat = append(st.lat, t1.Sub(t0))
			st.late = append(st.late, now.Sub(due))
			st.trips++
			st.commands += int64(ns[k])
		}
		p := trips[k].PeriodS
		if trips[k].Jitter > 0 {
			p *= 1 + trips[k].Jitter*(2*rng.Float64()-1)
		}
		next[k] = due.Add(time.Duration(p * float64(time.Second)))
	}
}

func pct(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	i := int(q / 100 * float64(len(d)-1))
	return float64(d[i].Microseconds()) / 1000
}

func main() {
	addr := flag.String("addr", "127.0.0.1:6379", "redis host:port")
	file := flag.String("commands", "worker_commands.json", "the per-role command sequence")
	actors := flag.Int("actors", 15000, "actors")
	policies := flag.Int("policies", 32, "policy workers")
	trainers := flag.Int("trainers", 8, "trainers (trainer 0 also runs the experiment monitor)")
	ramp := flag.Float64("ramp", 1, "workers start evenly over this many seconds")
	warmup := flag.Float64("warmup", 6, "seconds after the ramp before measuring (the 5 s directory reads settle)")
	seconds := flag.Float64("seconds", 30, "measured window")
	flag.Parse()
	debug.SetGCPercent(400) // the generator's own CPU competes with the server's on one machine

	raw, err := os.ReadFile(*file)
	must(err)
	var sp spec
	must(json.Unmarshal(raw, &sp))

	root := "srl/bench/load"
	var workers []*worker
	add := func(r, progressRole string, n int) {
		for i := 0; i < n; i++ {
			workers = append(workers, &worker{role: r, index: i, vars: map[string]string{"$progress": fmt.Sprintf("%s/progress/%s/%d", root, progressRole, i)}})
		}
	}
	add("actor", "actor", *actors)
	add("policy", "policy", *policies)
	if *trainers > 0 {
		add("trainer0", "trainer", 1)
		add("trainer", "trainer", *trainers-1)
		for _, w := range workers[len(workers)-*trainers+1:] {
			w.index++ // trainers 1..n-1
			w.vars["$progress"] = fmt.Sprintf("%s/progress/trainer/%d", root, w.index)
		}
	}
	var progressNames, infNames, sampleNames []string
	for _, w := range workers {
		progressNames = append(progressNames, w.vars["$progress"])
	}
	for i := 0; i < *policies; i++ {
		infNames = append(infNames, fmt.Sprintf("%s/streams/inference/%d", root, i))
	}
	for i := 0; i < *trainers; i++ {
		sampleNames = append(sampleNames, fmt.Sprintf("%s/streams/sample/%d", root, i))
	}
	sort.Strings(progressNames)
	workers = append(workers, &worker{role: "monitor", vars: map[string]string{"$progress": ""}})
	rng := rand.New(rand.NewSource(1))
	rng.Shuffle(len(workers), func(i, j int) { workers[i], workers[j] = workers[j], workers[i] })
	ttlMs := strconv.Itoa(int(sp.KeepaliveTTLS * 1000))
	for _, w := range workers {
		v := w.vars
		v["$stop"], v["$index"], v["$ttl_ms"] = root+"/state/stop", index, ttlMs
		v["$summary"], v["$summary_body"] = root+"/state/summary", body(sp.ProgressBytes["monitor"], "monitor", 0)
		v["$inference_streams"], v["$sample_streams"], v["$progress_root"] = root+"/streams/inference", root+"/streams/sample", root+"/progress"
		v["$trainer_peer"] = root + "/trainers/peers/0"
		v["$address"] = fmt.Sprintf("tcp://10.%d.%d.%d:4100", w.index/65536, w.index/256%256, w.index%256)
		v["$body"] = body(sp.ProgressBytes[w.role], w.role, w.index)
		v["$own_stream"] = ""
		switch w.role {
		case "policy":
			v["$own_stream"] = infNames[w.index]
		case "trainer0", "trainer":
			v["$own_stream"] = sampleNames[w.index]
		}
		w.lists = map[string][]string{"$inference_names": infNames, "$sample_names": sampleNames, "$progress_names": progressNames}
	}
	var keys []string
	for k := range workers[0].vars {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })

	// Intended periodic round trips per second (what the schedule asks for).
	intended := 0.0
	for _, w := range workers {
		for _, t := range sp.Roles[w.role].Every {
			intended += 1 / t.PeriodS
		}
	}

	t0 := time.Now().Add(200 * time.Millisecond)
	ws := t0.Add(time.Duration((*ramp + *warmup) * float64(time.Second)))
	we := ws.Add(time.Duration(*seconds * float64(time.Second)))
	winStart.Store(ws.UnixNano())
	winEnd.Store(we.UnixNano())
	stop := we.Add(500 * time.Millisecond)
	all := make([]*stats, 0, 2*len(workers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, w := range workers {
		r, ok := sp.Roles[w.role]
		if !ok {
			must(fmt.Errorf("role %s not in %s", w.role, *file))
		}
		start := t0.Add(time.Duration(*ramp * float64(i) / float64(len(workers)) * float64(time.Second)))
		wg.Add(1)
		go func(w *worker, r role, start time.Time, seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			time.Sleep(time.Until(start))
			conns := map[int]*conn{0: dial(*addr)}
			for _, t := range r.Start {
				if conns[t.Conn] == nil {
					conns[t.Conn] = dial(*addr)
				}
				b, n := expand(t, w, keys)
				conns[t.Conn].call(b, n)
			}
			byConn := map[int][]trip{}
			for _, t := range r.Every {
				byConn[t.Conn] = append(byConn[t.Conn], t)
			}
			now := time.Now()
			var cw sync.WaitGroup
			for ci, trips := range byConn {
				if conns[ci] == nil {
					conns[ci] = dial(*addr)
				}
				var bufs [][]byte
				var ns []int
				var first []time.Time
				for _, t := range trips {
					b, n := expand(t, w, keys)
					bufs, ns = append(bufs, b), append(ns, n)
					d := 0.0 // the 1 s progress round trip runs at once; the others one period later
					if t.PeriodS > 1 {
						d = t.PeriodS * (1 + t.Jitter*(2*rng.Float64()-1))
					}
					first = append(first, now.Add(time.Duration(d*float64(time.Second))))
				}
				st := &stats{}
				mu.Lock()
				all = append(all, st)
				mu.Unlock()
				cw.Add(1)
				go func(c *conn, trips []trip, bufs [][]byte, ns []int, first []time.Time, st *stats, seed int64) {
					defer cw.Done()
					runConn(c, trips, bufs, ns, first, stop, st, rand.New(rand.NewSource(seed)))
				}(conns[ci], trips, bufs, ns, first, st, rng.Int63())
			}
			cw.Wait()
			for _, c := range conns {
				c.c.Close()
			}
		}(w, r, start, int64(i))
	}
	time.Sleep(time.Until(ws))
	fmt.Println("measure start")
	time.Sleep(time.Until(we))
	fmt.Println("measure end")
	wg.Wait()

	var lat, late []time.Duration
	var trips, commands int64
	for _, st := range all {
		lat = append(lat, st.lat...)
		late = append(late, st.late...)
		trips += st.trips
		commands += st.commands
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	lateOver := 0
	for _, d := range late {
		if d > 100*time.Millisecond {
			lateOver++
		}
	}
	out := map[string]any{
		"workers":                    len(workers) - 1,
		"connections":                len(all),
		"intended_round_trips_per_s": int(intended + 0.5),
		"round_trips_per_s":          int(float64(trips) / *seconds + 0.5),
		"client_commands_per_s":      int(float64(commands) / *seconds + 0.5),
		"latency_ms":                 map[string]float64{"p50": pct(lat, 50), "p99": pct(lat, 99), "p999": pct(lat, 99.9), "max": pct(lat, 100)},
		"lateness_ms":                map[string]float64{"p50": pct(late, 50), "p99": pct(late, 99), "max": pct(late, 100)},
		"late_over_100ms":            lateOver,
	}
	b, _ := json.Marshal(out)
	_, err = io.WriteString(os.Stdout, string(b)+"\n")
	must(err)
}
