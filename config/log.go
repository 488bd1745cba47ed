package config

import (
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// masked replaces a secret that is set.
const masked = "****"

// LogValue makes a Config safe to log, for example with
// slog.Any("config", cfg): keys are the environment variable names, secrets
// (TWILIO_AUTH_TOKEN, LIVEKIT_API_SECRET, ENCRYPTION_KEY, JWT_SECRET,
// DASHBOARD_PASSWORD, ANALYSIS_LLM_API_KEY, and passwords inside URLs) read
// "****" when set and "" when not.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("DATABASE_URL", redactURL(c.DatabaseURL)),
		slog.String("REDIS_URL", redactURL(c.RedisURL)),
		slog.String("REDIS_CLUSTER_ADDRS", strings.Join(c.RedisClusterAddrs, ",")),
		slog.String("HTTP_ADDR", c.HTTPAddr),
		slog.String("METRICS_ADDR", c.MetricsAddr),
		slog.String("PUBLIC_BASE_URL", redactURL(c.PublicBaseURL)),
		slog.String("TWILIO_ACCOUNT_SID", c.TwilioAccountSID),
		slog.String("TWILIO_AUTH_TOKEN", mask(c.TwilioAuthToken)),
		slog.String("TWILIO_API_BASE_URL", redactURL(c.TwilioAPIBaseURL)),
		slog.String("TWILIO_VOICE_URL", redactURL(c.TwilioVoiceURL)),
		slog.String("TELEPHONY_MODE", c.TelephonyMode),
		slog.String("PROVIDER_TIMEOUT", formatDuration(c.ProviderTimeout)),
		slog.String("LIVEKIT_URL", redactURL(c.LiveKitURL)),
		slog.String("LIVEKIT_API_KEY", c.LiveKitAPIKey),
		slog.String("LIVEKIT_API_SECRET", mask(c.LiveKitAPISecret)),
		slog.String("ENCRYPTION_KEY", mask(string(c.EncryptionKey))),
		slog.String("JWT_SECRET", mask(c.JWTSecret)),
		slog.String("JWT_JWKS_URL", redactURL(c.JWTJWKSURL)),
		slog.String("JWT_ISSUER", c.JWTIssuer),
		slog.String("JWT_AUDIENCE", c.JWTAudience),
		slog.String("WEBHOOK_RETRY_SCHEDULE", formatSchedule(c.WebhookRetrySchedule)),
		slog.String("WEBHOOK_TIMEOUT", formatDuration(c.WebhookTimeout)),
		slog.Bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", c.WebhookAllowPrivateNetworks),
		slog.Int("WEBHOOK_ENDPOINTS_PER_WORKSPACE", c.WebhookEndpointsPerWorkspace),
		slog.String("WEBHOOK_DISABLE_AFTER", formatDuration(c.WebhookDisableAfter)),
		slog.String("WEBHOOK_DELIVERY_RETENTION", formatDuration(c.WebhookDeliveryRetention)),
		slog.Int("RATE_LIMIT_PER_SECOND", c.RateLimitPerSecond),
		slog.Int("RATE_LIMIT_BURST", c.RateLimitBurst),
		slog.String("MAX_CALL_DURATION", formatDuration(c.MaxCallDuration)),
		slog.String("OVERDUE_SCAN_INTERVAL", formatDuration(c.OverdueScanInterval)),
		slog.String("RECOVERY_SWEEP_INTERVAL", formatDuration(c.RecoverySweepInterval)),
		slog.String("DASHBOARD_USERNAME", c.DashboardUsername),
		slog.String("DASHBOARD_PASSWORD", mask(c.DashboardPassword)),
		slog.Bool("DASHBOARD_READ_ONLY", c.DashboardReadOnly),
		slog.String("ANALYSIS_LLM_BASE_URL", redactURL(c.AnalysisLLMBaseURL)),
		slog.String("ANALYSIS_LLM_API_KEY", mask(c.AnalysisLLMAPIKey)),
		slog.String("ANALYSIS_LLM_MODEL", c.AnalysisLLMModel),
		slog.Bool("LEGACY_EMPTY_ERROR_RESPONSES", c.LegacyEmptyErrorResponses),
		slog.Int("WORKER_CONCURRENCY", c.WorkerConcurrency),
		slog.String("LOG_LEVEL", strings.ToLower(c.LogLevel.String())),
		slog.String("LOG_FORMAT", c.LogFormat),
	)
}

// Logger returns a logger writing to w at LogLevel, as JSON lines or, with
// LogFormat "text", as slog text lines.
func (c Config) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == LogFormatText {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func mask(s string) string {
	if s == "" {
		return ""
	}
	return masked
}

// redactURL masks the password of a URL's userinfo and secret-looking query
// parameters, or the password of a pgx key=value string. A value that cannot
// be parsed and might hold credentials is masked entirely.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	if !strings.Contains(s, "://") {
		if strings.Contains(s, "=") {
			return redactKeyValue(s)
		}
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		if strings.ContainsAny(s, "@?") {
			return masked
		}
		return s
	}
	// url.URL escapes '*' in userinfo, so mark the password and swap after.
	const mark = "endcall-redacted-password"
	hasPassword := false
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), mark)
			hasPassword = true
		}
	}
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			k, _, ok := strings.Cut(p, "=")
			if !ok {
				continue
			}
			if key, err := url.QueryUnescape(k); err != nil || secretKey(key) {
				parts[i] = k + "=" + masked
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	out := u.String()
	if hasPassword {
		out = strings.Replace(out, ":"+mark+"@", ":"+masked+"@", 1)
	}
	return out
}

// secretKey reports whether a connection parameter name holds a secret.
func secretKey(k string) bool {
	k = strings.ToLower(k)
	return strings.Contains(k, "password") || strings.Contains(k, "secret") || strings.Contains(k, "token")
}

// redactKeyValue masks secret values of a libpq-style "k=v k='v v'" string.
func redactKeyValue(s string) string {
	var b strings.Builder
	i := 0
	for i < len(s) {
		// Copy whitespace.
		for i < len(s) && isSpace(s[i]) {
			b.WriteByte(s[i])
			i++
		}
		if i >= len(s) {
			break
		}
		// Key, up to '=' or whitespace.
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		b.WriteString(key)
		// Spaces and '=' around it.
		for i < len(s) && (isSpace(s[i]) || s[i] == '=') {
			b.WriteByte(s[i])
			i++
		}
		// Value: quoted with backslash escapes, or up to whitespace.
		start = i
		if i < len(s) && s[i] == '\'' {
			i++
			for i < len(s) && s[i] != '\'' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			i++
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' {
					i++
				}
				i++
			}
		}
		i = min(i, len(s))
		if secretKey(key) {
			b.WriteString(masked)
		} else {
			b.WriteString(s[start:i])
		}
	}
	return b.String()
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// formatDuration prints 1h rather than 1h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func formatSchedule(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = formatDuration(d)
	}
	return strings.Join(parts, ",")
}
