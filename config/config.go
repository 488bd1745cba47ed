package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Values of Config.TelephonyMode.
const (
	TelephonyTwilio    = "twilio"
	TelephonySimulated = "simulated"
)

// Values of Config.LogFormat.
const (
	LogFormatJSON = "json"
	LogFormatText = "text"
)

// MinJWTSecretSize is the least length in bytes of JWT_SECRET: an HS256 key
// shorter than the hash's 32 bytes can be guessed offline from one token.
const MinJWTSecretSize = 32

// EncryptionKeySize is the length in bytes of a decoded ENCRYPTION_KEY (AES-256).
const EncryptionKeySize = 32

// Config is the validated configuration of every endcall subcommand. Each
// field corresponds to one environment variable; unset
// optional strings are empty and unset optional slices are nil.
type Config struct {
	// DatabaseURL is DATABASE_URL: a postgres:// URL or a pgx key=value string.
	DatabaseURL string
	// RedisURL is REDIS_URL (redis:// or rediss://); may be empty when
	// RedisClusterAddrs is set, or under LoadDB.
	RedisURL string
	// RedisClusterAddrs is REDIS_CLUSTER_ADDRS split into host:port entries;
	// when non-empty, Redis Cluster is used instead of RedisURL.
	RedisClusterAddrs []string

	// HTTPAddr is HTTP_ADDR, the listen address of serve and all.
	HTTPAddr string
	// MetricsAddr is METRICS_ADDR: when set, `worker` serves /metrics and
	// /healthz there (serve and all expose them on HTTP_ADDR already).
	MetricsAddr string
	// PublicBaseURL is PUBLIC_BASE_URL without a trailing slash.
	PublicBaseURL string

	// TwilioAccountSID is TWILIO_ACCOUNT_SID, the platform's Twilio account.
	TwilioAccountSID string
	// TwilioAuthToken is TWILIO_AUTH_TOKEN, the platform's Twilio auth token (secret).
	TwilioAuthToken string
	// TwilioAPIBaseURL is TWILIO_API_BASE_URL without a trailing slash.
	TwilioAPIBaseURL string
	// TwilioVoiceURL is TWILIO_VOICE_URL, the TwiML URL given to Twilio by make-call.
	TwilioVoiceURL string
	// TelephonyMode is TELEPHONY_MODE: TelephonyTwilio or TelephonySimulated.
	TelephonyMode string
	// ProviderTimeout is PROVIDER_TIMEOUT, the limit of one in-request provider call.
	ProviderTimeout time.Duration

	// LiveKitURL is LIVEKIT_URL as an http(s) URL without a trailing slash
	// (ws:// and wss:// are rewritten to http:// and https://); empty means
	// room deletion is skipped.
	LiveKitURL string
	// LiveKitAPIKey is LIVEKIT_API_KEY, the issuer of room-service tokens.
	LiveKitAPIKey string
	// LiveKitAPISecret is LIVEKIT_API_SECRET, the HS256 signing key of room-service tokens (secret).
	LiveKitAPISecret string

	// EncryptionKey is ENCRYPTION_KEY decoded: exactly EncryptionKeySize
	// bytes, or nil when unset.
	EncryptionKey []byte

	// JWTSecret is JWT_SECRET; when set, HS256 bearer tokens are accepted (secret).
	JWTSecret string
	// JWTJWKSURL is JWT_JWKS_URL; when set, RS256/ES256 bearer tokens are
	// verified against this JWKS.
	JWTJWKSURL string
	// JWTIssuer is JWT_ISSUER; when set, tokens must carry it as iss.
	JWTIssuer string
	// JWTAudience is JWT_AUDIENCE; when set, tokens must carry it in aud.
	JWTAudience string

	// WebhookRetrySchedule is WEBHOOK_RETRY_SCHEDULE: the delays between
	// delivery attempts, so len+1 attempts in all.
	WebhookRetrySchedule []time.Duration
	// WebhookTimeout is WEBHOOK_TIMEOUT, the limit of one delivery attempt.
	WebhookTimeout time.Duration
	// WebhookAllowPrivateNetworks is WEBHOOK_ALLOW_PRIVATE_NETWORKS.
	WebhookAllowPrivateNetworks bool
	// WebhookEndpointsPerWorkspace is WEBHOOK_ENDPOINTS_PER_WORKSPACE, the
	// most webhook endpoints one workspace may have (positive).
	WebhookEndpointsPerWorkspace int
	// WebhookDisableAfter is WEBHOOK_DISABLE_AFTER: an endpoint failing
	// every attempt for this long is disabled.
	WebhookDisableAfter time.Duration
	// WebhookDeliveryRetention is WEBHOOK_DELIVERY_RETENTION: deliveries no
	// longer pending are deleted this long after their creation.
	WebhookDeliveryRetention time.Duration

	// RateLimitPerSecond is RATE_LIMIT_PER_SECOND, the requests a second
	// each workspace may make to /v1; 0 turns the limit off.
	RateLimitPerSecond int
	// RateLimitBurst is RATE_LIMIT_BURST, the requests a workspace may make
	// at once beyond the rate; 0 turns the limit off.
	RateLimitBurst int

	// MaxCallDuration is MAX_CALL_DURATION, after which an active call is overdue.
	MaxCallDuration time.Duration
	// OverdueScanInterval is OVERDUE_SCAN_INTERVAL (at least one second).
	OverdueScanInterval time.Duration
	// RecoverySweepInterval is RECOVERY_SWEEP_INTERVAL.
	RecoverySweepInterval time.Duration

	// DashboardUsername is DASHBOARD_USERNAME; with DashboardPassword it
	// enables /monitoring/.
	DashboardUsername string
	// DashboardPassword is DASHBOARD_PASSWORD (secret).
	DashboardPassword string
	// DashboardReadOnly is DASHBOARD_READ_ONLY (Asynqmon read-only mode).
	DashboardReadOnly bool

	// AnalysisLLMBaseURL is ANALYSIS_LLM_BASE_URL without a trailing slash;
	// when set (always together with AnalysisLLMModel) the LLM analyzer is used.
	AnalysisLLMBaseURL string
	// AnalysisLLMAPIKey is ANALYSIS_LLM_API_KEY, optional so that local
	// servers without authentication work (secret).
	AnalysisLLMAPIKey string
	// AnalysisLLMModel is ANALYSIS_LLM_MODEL.
	AnalysisLLMModel string

	// LegacyEmptyErrorResponses is LEGACY_EMPTY_ERROR_RESPONSES.
	LegacyEmptyErrorResponses bool
	// WorkerConcurrency is WORKER_CONCURRENCY, always positive.
	WorkerConcurrency int

	// LogLevel is LOG_LEVEL.
	LogLevel slog.Level
	// LogFormat is LOG_FORMAT: LogFormatJSON or LogFormatText.
	LogFormat string
}

// Default returns the configuration with every variable's default
// and nothing required filled in (no DATABASE_URL, no Redis). It is the
// starting point of Load and handy in tests.
func Default() Config {
	return Config{
		HTTPAddr:         ":8080",
		PublicBaseURL:    "http://localhost:8080",
		TwilioAPIBaseURL: "https://api.twilio.com",
		TelephonyMode:    TelephonyTwilio,
		ProviderTimeout:  5 * time.Second,
		WebhookRetrySchedule: []time.Duration{
			5 * time.Second, 5 * time.Minute, 30 * time.Minute,
			2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
		},
		WebhookTimeout:               15 * time.Second,
		WebhookEndpointsPerWorkspace: 50,
		WebhookDisableAfter:          120 * time.Hour,
		WebhookDeliveryRetention:     720 * time.Hour,
		RateLimitPerSecond:           50,
		RateLimitBurst:               100,
		MaxCallDuration:              time.Hour,
		OverdueScanInterval:          time.Minute,
		RecoverySweepInterval:        time.Minute,
		WorkerConcurrency:            20,
		LogLevel:                     slog.LevelInfo,
		LogFormat:                    LogFormatJSON,
	}
}

// Load reads the configuration of serve, worker and all through getenv
// (normally os.Getenv). DATABASE_URL is required, and so is REDIS_URL unless
// REDIS_CLUSTER_ADDRS is set. The error, if any, is one line starting with
// "config: " that names the variable and the problem; it never contains a
// secret.
func Load(getenv func(string) string) (Config, error) {
	return load(getenv, true)
}

// LoadDB is Load for the subcommands that only touch Postgres (migrate,
// apikey create): Redis is not required, but every variable that is set is
// still validated.
func LoadDB(getenv func(string) string) (Config, error) {
	return load(getenv, false)
}

// loader reads variables and keeps the first error.
type loader struct {
	getenv func(string) string
	err    error
}

func (l *loader) get(name string) string {
	return strings.TrimSpace(l.getenv(name))
}

func (l *loader) failf(format string, args ...any) {
	if l.err == nil {
		l.err = errors.New("config: " + fmt.Sprintf(format, args...))
	}
}

func load(getenv func(string) string, needRedis bool) (Config, error) {
	if getenv == nil {
		return Config{}, errors.New("config: no environment to read")
	}
	l := &loader{getenv: getenv}
	c := Default()

	// Postgres.
	c.DatabaseURL = l.get("DATABASE_URL")
	if c.DatabaseURL == "" {
		l.failf("DATABASE_URL is required")
	} else {
		l.checkDatabaseURL(c.DatabaseURL)
	}

	// Redis.
	c.RedisURL = l.get("REDIS_URL")
	if c.RedisURL != "" {
		l.checkRedisURL(c.RedisURL)
	}
	if v := l.get("REDIS_CLUSTER_ADDRS"); v != "" {
		c.RedisClusterAddrs = l.clusterAddrs("REDIS_CLUSTER_ADDRS", v)
	}
	if needRedis && c.RedisURL == "" && len(c.RedisClusterAddrs) == 0 {
		l.failf("REDIS_URL is required (or REDIS_CLUSTER_ADDRS for Redis Cluster)")
	}

	// HTTP.
	l.str("HTTP_ADDR", &c.HTTPAddr)
	l.checkListenAddr("HTTP_ADDR", c.HTTPAddr)
	l.str("METRICS_ADDR", &c.MetricsAddr)
	if c.MetricsAddr != "" {
		l.checkListenAddr("METRICS_ADDR", c.MetricsAddr)
	}
	l.httpURL("PUBLIC_BASE_URL", &c.PublicBaseURL, false)

	// Telephony.
	l.str("TWILIO_ACCOUNT_SID", &c.TwilioAccountSID)
	l.str("TWILIO_AUTH_TOKEN", &c.TwilioAuthToken)
	if (c.TwilioAccountSID == "") != (c.TwilioAuthToken == "") {
		l.failf("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set together")
	}
	l.httpURL("TWILIO_API_BASE_URL", &c.TwilioAPIBaseURL, false)
	l.httpURL("TWILIO_VOICE_URL", &c.TwilioVoiceURL, false)
	if v := l.get("TELEPHONY_MODE"); v != "" {
		c.TelephonyMode = strings.ToLower(v)
		if c.TelephonyMode != TelephonyTwilio && c.TelephonyMode != TelephonySimulated {
			l.failf("TELEPHONY_MODE must be %q or %q", TelephonyTwilio, TelephonySimulated)
		}
	}
	l.duration("PROVIDER_TIMEOUT", &c.ProviderTimeout, 0)

	// LiveKit.
	l.httpURL("LIVEKIT_URL", &c.LiveKitURL, true)
	l.str("LIVEKIT_API_KEY", &c.LiveKitAPIKey)
	l.str("LIVEKIT_API_SECRET", &c.LiveKitAPISecret)
	switch {
	case c.LiveKitURL != "" && (c.LiveKitAPIKey == "" || c.LiveKitAPISecret == ""):
		l.failf("LIVEKIT_URL requires LIVEKIT_API_KEY and LIVEKIT_API_SECRET")
	case (c.LiveKitAPIKey == "") != (c.LiveKitAPISecret == ""):
		l.failf("LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set together")
	}

	// Encryption.
	if v := l.get("ENCRYPTION_KEY"); v != "" {
		c.EncryptionKey = l.encryptionKey(v)
	}

	// JWT.
	l.str("JWT_SECRET", &c.JWTSecret)
	if c.JWTSecret != "" && len(c.JWTSecret) < MinJWTSecretSize {
		l.failf("JWT_SECRET must be at least %d bytes (got %d)", MinJWTSecretSize, len(c.JWTSecret))
	}
	l.httpURL("JWT_JWKS_URL", &c.JWTJWKSURL, false)
	l.str("JWT_ISSUER", &c.JWTIssuer)
	l.str("JWT_AUDIENCE", &c.JWTAudience)

	// Webhooks.
	if v := l.get("WEBHOOK_RETRY_SCHEDULE"); v != "" {
		c.WebhookRetrySchedule = l.schedule("WEBHOOK_RETRY_SCHEDULE", v)
	}
	l.duration("WEBHOOK_TIMEOUT", &c.WebhookTimeout, 0)
	l.boolean("WEBHOOK_ALLOW_PRIVATE_NETWORKS", &c.WebhookAllowPrivateNetworks)
	l.integer("WEBHOOK_ENDPOINTS_PER_WORKSPACE", &c.WebhookEndpointsPerWorkspace, 1)
	l.duration("WEBHOOK_DISABLE_AFTER", &c.WebhookDisableAfter, time.Minute)
	l.duration("WEBHOOK_DELIVERY_RETENTION", &c.WebhookDeliveryRetention, time.Hour)

	// Rate limit.
	l.integer("RATE_LIMIT_PER_SECOND", &c.RateLimitPerSecond, 0)
	l.integer("RATE_LIMIT_BURST", &c.RateLimitBurst, 0)

	// Scheduler and reconciler.
	l.duration("MAX_CALL_DURATION", &c.MaxCallDuration, 0)
	l.duration("OVERDUE_SCAN_INTERVAL", &c.OverdueScanInterval, time.Second)
	l.duration("RECOVERY_SWEEP_INTERVAL", &c.RecoverySweepInterval, 0)

	// Dashboard.
	l.str("DASHBOARD_USERNAME", &c.DashboardUsername)
	l.str("DASHBOARD_PASSWORD", &c.DashboardPassword)
	if (c.DashboardUsername == "") != (c.DashboardPassword == "") {
		l.failf("DASHBOARD_USERNAME and DASHBOARD_PASSWORD must be set together")
	}
	l.boolean("DASHBOARD_READ_ONLY", &c.DashboardReadOnly)

	// Analysis.
	l.httpURL("ANALYSIS_LLM_BASE_URL", &c.AnalysisLLMBaseURL, false)
	l.str("ANALYSIS_LLM_API_KEY", &c.AnalysisLLMAPIKey)
	l.str("ANALYSIS_LLM_MODEL", &c.AnalysisLLMModel)
	switch {
	case (c.AnalysisLLMBaseURL == "") != (c.AnalysisLLMModel == ""):
		l.failf("ANALYSIS_LLM_BASE_URL and ANALYSIS_LLM_MODEL must be set together")
	case c.AnalysisLLMAPIKey != "" && c.AnalysisLLMBaseURL == "":
		l.failf("ANALYSIS_LLM_API_KEY requires ANALYSIS_LLM_BASE_URL and ANALYSIS_LLM_MODEL")
	}

	// Misc.
	l.boolean("LEGACY_EMPTY_ERROR_RESPONSES", &c.LegacyEmptyErrorResponses)
	if v := l.get("WORKER_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			l.failf("WORKER_CONCURRENCY must be a positive integer")
		}
		c.WorkerConcurrency = n
	}

	// Logging.
	if v := l.get("LOG_LEVEL"); v != "" {
		lvl, ok := parseLevel(v)
		if !ok {
			l.failf("LOG_LEVEL must be one of debug, info, warn, error")
		}
		c.LogLevel = lvl
	}
	if v := l.get("LOG_FORMAT"); v != "" {
		c.LogFormat = strings.ToLower(v)
		if c.LogFormat != LogFormatJSON && c.LogFormat != LogFormatText {
			l.failf("LOG_FORMAT must be %q or %q", LogFormatJSON, LogFormatText)
		}
	}

	if l.err != nil {
		return Config{}, l.err
	}
	return c, nil
}

// str sets *dst to the trimmed variable when it is set.
func (l *loader) str(name string, dst *string) {
	if v := l.get(name); v != "" {
		*dst = v
	}
}

// duration sets *dst from a Go duration; it must be positive and at least min.
func (l *loader) duration(name string, dst *time.Duration, min time.Duration) {
	v := l.get(name)
	if v == "" {
		return
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		l.failf("%s: invalid duration %q (use Go syntax such as 5s, 1m)", name, v)
	case d <= 0:
		l.failf("%s must be positive (got %s)", name, v)
	case d < min:
		l.failf("%s must be at least %s", name, min)
	}
	*dst = d
}

// maxInteger bounds the integer variables, so that none overflows where it
// is used (a rate times a period, a count in SQL).
const maxInteger = 1_000_000

// integer sets *dst from a decimal integer from min to maxInteger.
func (l *loader) integer(name string, dst *int, min int) {
	v := l.get(name)
	if v == "" {
		return
	}
	n, err := strconv.Atoi(v)
	switch {
	case err != nil || n < min || n > maxInteger:
		if min == 0 {
			l.failf("%s must be an integer from 0 to %d (got %q)", name, maxInteger, v)
		} else {
			l.failf("%s must be an integer from %d to %d (got %q)", name, min, maxInteger, v)
		}
		return
	}
	*dst = n
}

// TaskTimeouts are the asynq task timeouts that wrap the configured
// timeouts: the call:hangup task (PROVIDER_TIMEOUT) and the
// webhook:deliver task (WEBHOOK_TIMEOUT).
type TaskTimeouts struct {
	Hangup, Deliver time.Duration
	// Margin is what a task needs besides its outside request: reading
	// what it owes and recording the outcome.
	Margin time.Duration
}

// CheckTaskTimeouts fails when an outside request could outlast the task
// that wraps it: the task would then be cut off before it records the
// attempt, which is retried without a trace.
func (c Config) CheckTaskTimeouts(t TaskTimeouts) error {
	if c.ProviderTimeout+t.Margin > t.Hangup {
		return fmt.Errorf("config: PROVIDER_TIMEOUT must be at most %s (the call:hangup task times out after %s), got %s",
			t.Hangup-t.Margin, t.Hangup, c.ProviderTimeout)
	}
	if c.WebhookTimeout+t.Margin > t.Deliver {
		return fmt.Errorf("config: WEBHOOK_TIMEOUT must be at most %s (the webhook:deliver task times out after %s), got %s",
			t.Deliver-t.Margin, t.Deliver, c.WebhookTimeout)
	}
	return nil
}

// boolean sets *dst from true/false/1/0 (strconv.ParseBool, any case).
func (l *loader) boolean(name string, dst *bool) {
	v := l.get(name)
	if v == "" {
		return
	}
	b, err := strconv.ParseBool(strings.ToLower(v))
	if err != nil {
		l.failf("%s: invalid boolean %q (use true or false)", name, v)
	}
	*dst = b
}

// httpURL sets *dst to an absolute http(s) URL without trailing slash. With
// allowWS, ws:// and wss:// are accepted and rewritten to http:// and https://.
func (l *loader) httpURL(name string, dst *string, allowWS bool) {
	v := l.get(name)
	if v == "" {
		return
	}
	want := "an absolute http:// or https:// URL"
	if allowWS {
		want = "an absolute http(s):// or ws(s):// URL"
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.Opaque != "" {
		l.failf("%s: invalid URL %q (must be %s)", name, redactURL(v), want)
		return
	}
	switch scheme := strings.ToLower(u.Scheme); {
	case scheme == "http" || scheme == "https":
		u.Scheme = scheme
	case allowWS && scheme == "ws":
		u.Scheme = "http"
	case allowWS && scheme == "wss":
		u.Scheme = "https"
	default:
		l.failf("%s: invalid URL %q (must be %s)", name, redactURL(v), want)
		return
	}
	*dst = strings.TrimRight(u.String(), "/")
}

func (l *loader) checkDatabaseURL(v string) {
	if !strings.Contains(v, "://") {
		// pgx also accepts "host=... user=... dbname=..." strings.
		if !strings.Contains(v, "=") {
			l.failf("DATABASE_URL must be a postgres:// URL or a key=value connection string")
		}
		return
	}
	u, err := url.Parse(v)
	if err != nil {
		l.failf("DATABASE_URL is not a valid URL")
		return
	}
	if s := strings.ToLower(u.Scheme); s != "postgres" && s != "postgresql" {
		l.failf("DATABASE_URL must start with postgres:// or postgresql://")
	}
}

func (l *loader) checkRedisURL(v string) {
	lower := strings.ToLower(v)
	if !strings.HasPrefix(lower, "redis://") && !strings.HasPrefix(lower, "rediss://") {
		l.failf("REDIS_URL must start with redis:// or rediss://")
		return
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		l.failf("REDIS_URL is not a valid URL (use redis://[:password@]host:port/db)")
		return
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			l.failf("REDIS_URL: database %q must be a number (use redis://[:password@]host:port/db)", db)
		}
	}
}

// checkListenAddr validates a host:port listen address (port may be 0).
func (l *loader) checkListenAddr(name, v string) {
	_, port, err := net.SplitHostPort(v)
	if err == nil {
		if n, perr := strconv.Atoi(port); perr != nil || n < 0 || n > 65535 {
			err = errors.New("bad port")
		}
	}
	if err != nil {
		l.failf("%s: invalid address %q (use host:port, such as :8080)", name, v)
	}
}

// clusterAddrs splits a comma-separated host:port list; empty entries are
// ignored but at least one address is required.
func (l *loader) clusterAddrs(name, v string) []string {
	var addrs []string
	for _, a := range strings.Split(v, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		host, port, err := net.SplitHostPort(a)
		if err == nil {
			if n, perr := strconv.Atoi(port); perr != nil || n < 1 || n > 65535 || host == "" {
				err = errors.New("bad address")
			}
		}
		if err != nil {
			l.failf("%s: invalid address %q (use comma-separated host:port, such as redis-1:6379,redis-2:6379)", name, a)
			return nil
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		l.failf("%s must list at least one host:port", name)
	}
	return addrs
}

// schedule parses a comma-separated list of positive durations.
func (l *loader) schedule(name, v string) []time.Duration {
	var out []time.Duration
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			l.failf("%s: empty entry (use comma-separated durations such as 5s,5m,30m)", name)
			return nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			l.failf("%s: invalid duration %q (use Go syntax such as 5s, 1m)", name, s)
			return nil
		}
		if d <= 0 {
			l.failf("%s: every delay must be positive (got %s)", name, s)
			return nil
		}
		out = append(out, d)
	}
	return out
}

// encryptionKey decodes standard or URL-safe base64, padded or not.
func (l *loader) encryptionKey(v string) []byte {
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		key, err := enc.DecodeString(v)
		if err != nil {
			continue
		}
		if len(key) != EncryptionKeySize {
			l.failf("ENCRYPTION_KEY must be %d bytes, base64-encoded (got %d bytes)", EncryptionKeySize, len(key))
			return nil
		}
		return key
	}
	l.failf("ENCRYPTION_KEY must be %d bytes, base64-encoded (not valid base64; generate one with: openssl rand -base64 32)", EncryptionKeySize)
	return nil
}

func parseLevel(v string) (slog.Level, bool) {
	switch strings.ToLower(v) {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn", "warning":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return slog.LevelInfo, false
}
