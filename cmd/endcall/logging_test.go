package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/endcall/endcall/config"
	"github.com/endcall/endcall/internal/testenv"
)

// TestRedisLogsAreJSON runs a go-redis client against a closed port in a
// child process whose logger writes JSON to stderr, as `endcall` does, and
// checks that every line on that stderr is JSON and that go-redis's own
// complaint is among them.
func TestRedisLogsAreJSON(t *testing.T) {
	t.Parallel()
	if os.Getenv("ENDCALL_TEST_REDIS_LOG_CHILD") == "1" {
		log := config.Config{LogFormat: config.LogFormatJSON}.Logger(os.Stderr)
		useLogger(log)
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + os.Getenv("ENDCALL_TEST_CLOSED_PORT"), MaxRetries: -1})
		defer rdb.Close()
		rdb.Ping(context.Background())
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRedisLogsAreJSON$", "-test.count=1")
	port := testenv.FreePort(t)
	cmd.Env = append(os.Environ(), "ENDCALL_TEST_REDIS_LOG_CHILD=1", "ENDCALL_TEST_CLOSED_PORT="+strconv.Itoa(port))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	var fromRedis int
	for line := range strings.Lines(stderr.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("stderr line is not JSON: %q", line)
			continue
		}
		if m["component"] == "go-redis" && m["level"] == "WARN" && strings.Contains(m["msg"].(string), "connection refused") {
			fromRedis++
		}
	}
	if fromRedis == 0 {
		t.Errorf("no go-redis line among %q", stderr.String())
	}
}
