package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// redisLogger routes go-redis's own log lines (connection pool failures and
// the like) into slog, so that they do not appear as plain text among the
// JSON lines.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "), "component", "go-redis")
}

// useLogger makes log the logger of the libraries that keep a global one.
// asynq's logger is set where its server is built (worker.New).
func useLogger(log *slog.Logger) {
	redis.SetLogger(redisLogger{log})
}
