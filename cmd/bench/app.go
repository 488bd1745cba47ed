package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// buildEndcall builds the endcall binary into dir. With pprof, the build
// adds the benchpprof tag, whose only file serves net/http/pprof on
// ENDCALL_PPROF_ADDR; production builds never contain it.
func buildEndcall(ctx context.Context, dir string, pprof bool) (string, error) {
	bin := filepath.Join(dir, "endcall")
	args := []string{"build", "-o", bin}
	if pprof {
		args = append(args, "-tags", "benchpprof")
	}
	args = append(args, "github.com/endcall/endcall/cmd/endcall")
	cmd := exec.CommandContext(ctx, goTool(), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

func goTool() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

// apiKey is what `endcall apikey create` prints.
type apiKey struct {
	WorkspaceID string `json:"workspace_id"`
	APIKey      string `json:"api_key"`
}

// createAPIKey creates a workspace and its API key with the endcall binary.
func createAPIKey(ctx context.Context, bin string, env []string, workspace string) (apiKey, error) {
	var created apiKey
	out, err := command(ctx, bin, env, "apikey", "create", "--workspace", workspace)
	if err != nil {
		return created, err
	}
	if err := json.Unmarshal(out, &created); err != nil {
		return created, fmt.Errorf("apikey create printed %q: %v", out, err)
	}
	return created, nil
}

// command runs one endcall subcommand to completion and returns its stdout.
func command(ctx context.Context, bin string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("endcall %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// process is a running `endcall all`.
type process struct {
	cmd  *exec.Cmd
	url  string
	log  *os.File
	done chan struct{}
	err  error
}

// startProcess starts `endcall all` with env and waits for /healthz.
func startProcess(ctx context.Context, bin string, env []string, addr, logPath string) (*process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "all")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &process{cmd: cmd, url: "http://" + addr, log: logf, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			return nil, fmt.Errorf("endcall all exited: %v\n%s", p.err, tail(logPath, 20))
		default:
		}
		res, err := http.Get(p.url + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, fmt.Errorf("endcall all not healthy within 30s\n%s", tail(logPath, 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the process to drain and exit, killing
// it after 40 s.
func (p *process) stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.log.Close()
	return p.err
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func tail(path string, n int) string {
	raw, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freeAddr returns a 127.0.0.1 address nobody listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// memWatch measures the peak resident set of a process over a window: the
// kernel's high-water mark (VmHWM), reset at the start of the window
// through /proc/PID/clear_refs, and, where that reset is not allowed,
// VmRSS sampled every 20 ms.
type memWatch struct {
	pid     int
	reset   bool
	mu      sync.Mutex
	sampled int64
	stopc   chan struct{}
	done    chan struct{}
}

func watchMemory(pid int) *memWatch {
	m := &memWatch{pid: pid, stopc: make(chan struct{}), done: make(chan struct{})}
	m.reset = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
	go func() {
		defer close(m.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if kb, err := procStatus(pid, "VmRSS"); err == nil {
				m.mu.Lock()
				m.sampled = max(m.sampled, kb)
				m.mu.Unlock()
			}
			select {
			case <-m.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

// stop ends the window and returns its peak RSS in KiB.
func (m *memWatch) stop() int64 {
	close(m.stopc)
	<-m.done
	m.mu.Lock()
	peak := m.sampled
	m.mu.Unlock()
	if m.reset {
		if hwm, err := procStatus(m.pid, "VmHWM"); err == nil {
			peak = max(peak, hwm)
		}
	}
	return peak
}

// procStatus reads a "kB" field of /proc/PID/status.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, errors.New(field + " not found")
}
