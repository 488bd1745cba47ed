package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc CPU times (100 on Linux).
const clockTick = 100

// cpuSnap is the CPU time used so far by each process group of the run,
// and by the whole machine, in clock ticks.
type cpuSnap struct {
	at                             time.Time
	endcall, postgres, redis, self int64
	machineBusy, machineAll        int64
}

// cpuGroups names the processes whose CPU time is accounted.
type cpuGroups struct {
	endcall, postmaster, redis int
}

// cpuGroups finds the postmaster (the parent of a backend of ours) and the
// Redis server (INFO server) of the run.
func (b *bench) cpuGroups(ctx context.Context) cpuGroups {
	g := cpuGroups{endcall: b.proc.pid()}
	var backend int
	if err := b.pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err == nil {
		if st, err := procStat(backend); err == nil {
			g.postmaster = st.ppid
		}
	}
	if info, err := b.rdb.Info(ctx, "server").Result(); err == nil {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
				g.redis, _ = strconv.Atoi(v)
			}
		}
	}
	return g
}

type stat struct {
	ppid int
	cpu  int64 // utime + stime of the process and its reaped children
}

func procStat(pid int) (stat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	s := string(raw)
	// The command name is in parentheses and may hold spaces.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 15 {
		return stat{}, fmt.Errorf("short /proc/%d/stat", pid)
	}
	var st stat
	st.ppid, _ = strconv.Atoi(f[1])
	for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
		v, _ := strconv.ParseInt(f[i], 10, 64)
		st.cpu += v
	}
	return st, nil
}

func (g cpuGroups) snap() cpuSnap {
	s := cpuSnap{at: time.Now()}
	if st, err := procStat(g.endcall); err == nil {
		s.endcall = st.cpu
	}
	if st, err := procStat(g.redis); err == nil {
		s.redis = st.cpu
	}
	if st, err := procStat(os.Getpid()); err == nil {
		s.self = st.cpu
	}
	if g.postmaster > 0 {
		if st, err := procStat(g.postmaster); err == nil {
			s.postgres = st.cpu
		}
		// Backends and background processes are children of the postmaster.
		if dirs, err := os.ReadDir("/proc"); err == nil {
			for _, d := range dirs {
				pid, err := strconv.Atoi(d.Name())
				if err != nil {
					continue
				}
				if st, err := procStat(pid); err == nil && st.ppid == g.postmaster {
					s.postgres += st.cpu
				}
			}
		}
	}
	if raw, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(raw), "\n")
		for i, f := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseInt(f, 10, 64)
			s.machineAll += v
			if i != 3 && i != 4 { // idle, iowait
				s.machineBusy += v
			}
		}
	}
	return s
}

// cpuUse describes the CPU used between two snapshots, in cores.
func cpuUse(a, b cpuSnap) string {
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return ""
	}
	cores := func(ticks int64) float64 { return float64(ticks) / clockTick / secs }
	busy := 0.0
	if all := b.machineAll - a.machineAll; all > 0 {
		busy = float64(b.machineBusy-a.machineBusy) / float64(all) * float64(numCPU())
	}
	// Backends that exited in the window are missed; this is a guide.
	return fmt.Sprintf("CPU cores used: endcall %.2f, postgres %.2f, redis %.2f, bench %.2f; machine busy %.2f of %d",
		cores(b.endcall-a.endcall), cores(b.postgres-a.postgres), cores(b.redis-a.redis), cores(b.self-a.self), busy, numCPU())
}
