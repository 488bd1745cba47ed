package config

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env returns a getenv over the given pairs on top of the minimal valid set.
func env(kv ...string) func(string) string {
	m := map[string]string{
		"DATABASE_URL": "postgres://endcall:dbpass@localhost:5433/endcall?sslmode=disable",
		"REDIS_URL":    "redis://:redispass@localhost:6380/0",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

var key32 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))

func TestLoadDefaults(t *testing.T) {
	got, err := Load(env())
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		DatabaseURL:      "postgres://endcall:dbpass@localhost:5433/endcall?sslmode=disable",
		RedisURL:         "redis://:redispass@localhost:6380/0",
		HTTPAddr:         ":8080",
		PublicBaseURL:    "http://localhost:8080",
		TwilioAPIBaseURL: "https://api.twilio.com",
		TelephonyMode:    "twilio",
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
		LogFormat:                    "json",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load defaults:\n got %+v\nwant %+v", got, want)
	}
}

func TestLoadValues(t *testing.T) {
	got, err := Load(env(
		"REDIS_URL", "",
		"REDIS_CLUSTER_ADDRS", " r1:7000, r2:7001 ,",
		"HTTP_ADDR", "127.0.0.1:9090",
		"PUBLIC_BASE_URL", "https://calls.example.com/",
		"TWILIO_ACCOUNT_SID", "AC123",
		"TWILIO_AUTH_TOKEN", "tok",
		"TWILIO_API_BASE_URL", "http://127.0.0.1:4010",
		"TWILIO_VOICE_URL", "https://agent.example.com/twiml",
		"TELEPHONY_MODE", " Simulated ",
		"PROVIDER_TIMEOUT", "2500ms",
		"LIVEKIT_URL", "wss://lk.example.com",
		"LIVEKIT_API_KEY", "APIkey",
		"LIVEKIT_API_SECRET", "lksecret",
		"ENCRYPTION_KEY", key32,
		"JWT_SECRET", "jwtsecret-jwtsecret-jwtsecret-0123",
		"JWT_JWKS_URL", "https://id.example.com/.well-known/jwks.json",
		"JWT_ISSUER", "https://id.example.com/",
		"JWT_AUDIENCE", "endcall",
		"WEBHOOK_RETRY_SCHEDULE", "1s, 2s,3m",
		"WEBHOOK_TIMEOUT", "3s",
		"WEBHOOK_ALLOW_PRIVATE_NETWORKS", "1",
		"WEBHOOK_ENDPOINTS_PER_WORKSPACE", "7",
		"WEBHOOK_DISABLE_AFTER", "48h",
		"WEBHOOK_DELIVERY_RETENTION", "168h",
		"RATE_LIMIT_PER_SECOND", "0",
		"RATE_LIMIT_BURST", " 10 ",
		"MAX_CALL_DURATION", "90s",
		"OVERDUE_SCAN_INTERVAL", "1s",
		"RECOVERY_SWEEP_INTERVAL", "30s",
		"DASHBOARD_USERNAME", "admin",
		"DASHBOARD_PASSWORD", "dashpass",
		"DASHBOARD_READ_ONLY", "TRUE",
		"ANALYSIS_LLM_BASE_URL", "http://localhost:11434/v1",
		"ANALYSIS_LLM_MODEL", "llama3",
		"LEGACY_EMPTY_ERROR_RESPONSES", "true",
		"WORKER_CONCURRENCY", "5",
		"LOG_LEVEL", "DEBUG",
		"LOG_FORMAT", "Text",
	))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		DatabaseURL:                  "postgres://endcall:dbpass@localhost:5433/endcall?sslmode=disable",
		RedisClusterAddrs:            []string{"r1:7000", "r2:7001"},
		HTTPAddr:                     "127.0.0.1:9090",
		PublicBaseURL:                "https://calls.example.com",
		TwilioAccountSID:             "AC123",
		TwilioAuthToken:              "tok",
		TwilioAPIBaseURL:             "http://127.0.0.1:4010",
		TwilioVoiceURL:               "https://agent.example.com/twiml",
		TelephonyMode:                "simulated",
		ProviderTimeout:              2500 * time.Millisecond,
		LiveKitURL:                   "https://lk.example.com",
		LiveKitAPIKey:                "APIkey",
		LiveKitAPISecret:             "lksecret",
		EncryptionKey:                bytes.Repeat([]byte{7}, 32),
		JWTSecret:                    "jwtsecret-jwtsecret-jwtsecret-0123",
		JWTJWKSURL:                   "https://id.example.com/.well-known/jwks.json",
		JWTIssuer:                    "https://id.example.com/",
		JWTAudience:                  "endcall",
		WebhookRetrySchedule:         []time.Duration{time.Second, 2 * time.Second, 3 * time.Minute},
		WebhookTimeout:               3 * time.Second,
		WebhookAllowPrivateNetworks:  true,
		WebhookEndpointsPerWorkspace: 7,
		WebhookDisableAfter:          48 * time.Hour,
		WebhookDeliveryRetention:     168 * time.Hour,
		RateLimitPerSecond:           0,
		RateLimitBurst:               10,
		MaxCallDuration:              90 * time.Second,
		OverdueScanInterval:          time.Second,
		RecoverySweepInterval:        30 * time.Second,
		DashboardUsername:            "admin",
		DashboardPassword:            "dashpass",
		DashboardReadOnly:            true,
		AnalysisLLMBaseURL:           "http://localhost:11434/v1",
		AnalysisLLMModel:             "llama3",
		LegacyEmptyErrorResponses:    true,
		WorkerConcurrency:            5,
		LogLevel:                     slog.LevelDebug,
		LogFormat:                    "text",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load:\n got %+v\nwant %+v", got, want)
	}
}

func TestLoadAccepts(t *testing.T) {
	tests := []struct {
		name string
		kv   []string
	}{
		{"key=value DATABASE_URL", []string{"DATABASE_URL", "host=/tmp dbname=endcall password='a b'"}},
		{"postgresql scheme", []string{"DATABASE_URL", "postgresql://localhost/endcall"}},
		{"rediss", []string{"REDIS_URL", "rediss://user:pw@cache.example.com:6380"}},
		{"redis without db", []string{"REDIS_URL", "redis://localhost:6379"}},
		{"raw url-safe key", []string{"ENCRYPTION_KEY", base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))}},
		{"whitespace is unset", []string{"LOG_LEVEL", "  ", "WORKER_CONCURRENCY", "\t"}},
		{"warning level", []string{"LOG_LEVEL", "warning"}},
		{"llm without key", []string{"ANALYSIS_LLM_BASE_URL", "http://localhost:8000/v1", "ANALYSIS_LLM_MODEL", "m"}},
		{"livekit creds without url", []string{"LIVEKIT_API_KEY", "k", "LIVEKIT_API_SECRET", "s"}},
		{"ipv6 listen", []string{"HTTP_ADDR", "[::1]:0"}},
		{"jwt secret 32 bytes", []string{"JWT_SECRET", strings.Repeat("x", 32)}},
		{"rate limit off", []string{"RATE_LIMIT_PER_SECOND", "0", "RATE_LIMIT_BURST", "0"}},
		{"bool false", []string{"DASHBOARD_READ_ONLY", "0", "WEBHOOK_ALLOW_PRIVATE_NETWORKS", "False"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Load(env(tt.kv...)); err != nil {
				t.Errorf("Load: %v", err)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		kv   []string
		want string
	}{
		{"missing database", []string{"DATABASE_URL", ""}, `config: DATABASE_URL is required`},
		{"blank database", []string{"DATABASE_URL", "   "}, `config: DATABASE_URL is required`},
		{"database scheme", []string{"DATABASE_URL", "mysql://u:p@h/db"}, `config: DATABASE_URL must start with postgres:// or postgresql://`},
		{"database garbage", []string{"DATABASE_URL", "localhost"}, `config: DATABASE_URL must be a postgres:// URL or a key=value connection string`},
		{"missing redis", []string{"REDIS_URL", ""}, `config: REDIS_URL is required (or REDIS_CLUSTER_ADDRS for Redis Cluster)`},
		{"redis scheme", []string{"REDIS_URL", "localhost:6379"}, `config: REDIS_URL must start with redis:// or rediss://`},
		{"redis http", []string{"REDIS_URL", "http://localhost:6379"}, `config: REDIS_URL must start with redis:// or rediss://`},
		{"redis db", []string{"REDIS_URL", "redis://:pw@localhost:6379/x"}, `config: REDIS_URL: database "x" must be a number (use redis://[:password@]host:port/db)`},
		{"redis no host", []string{"REDIS_URL", "redis:///0"}, `config: REDIS_URL is not a valid URL (use redis://[:password@]host:port/db)`},
		{"cluster addr", []string{"REDIS_URL", "", "REDIS_CLUSTER_ADDRS", "r1:7000,r2"}, `config: REDIS_CLUSTER_ADDRS: invalid address "r2" (use comma-separated host:port, such as redis-1:6379,redis-2:6379)`},
		{"cluster port", []string{"REDIS_CLUSTER_ADDRS", "r1:0"}, `config: REDIS_CLUSTER_ADDRS: invalid address "r1:0" (use comma-separated host:port, such as redis-1:6379,redis-2:6379)`},
		{"cluster empty", []string{"REDIS_CLUSTER_ADDRS", ",,"}, `config: REDIS_CLUSTER_ADDRS must list at least one host:port`},
		{"http addr", []string{"HTTP_ADDR", "8080"}, `config: HTTP_ADDR: invalid address "8080" (use host:port, such as :8080)`},
		{"http addr port", []string{"HTTP_ADDR", ":http"}, `config: HTTP_ADDR: invalid address ":http" (use host:port, such as :8080)`},
		{"public url", []string{"PUBLIC_BASE_URL", "localhost:8080"}, `config: PUBLIC_BASE_URL: invalid URL "localhost:8080" (must be an absolute http:// or https:// URL)`},
		{"public url scheme", []string{"PUBLIC_BASE_URL", "ftp://example.com"}, `config: PUBLIC_BASE_URL: invalid URL "ftp://example.com" (must be an absolute http:// or https:// URL)`},
		{"twilio pair", []string{"TWILIO_ACCOUNT_SID", "AC1"}, `config: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set together`},
		{"twilio pair token", []string{"TWILIO_AUTH_TOKEN", "t"}, `config: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set together`},
		{"twilio base", []string{"TWILIO_API_BASE_URL", "/relative"}, `config: TWILIO_API_BASE_URL: invalid URL "/relative" (must be an absolute http:// or https:// URL)`},
		{"twilio voice", []string{"TWILIO_VOICE_URL", "agent.example.com"}, `config: TWILIO_VOICE_URL: invalid URL "agent.example.com" (must be an absolute http:// or https:// URL)`},
		{"telephony", []string{"TELEPHONY_MODE", "fake"}, `config: TELEPHONY_MODE must be "twilio" or "simulated"`},
		{"duration syntax", []string{"PROVIDER_TIMEOUT", "5 sec"}, `config: PROVIDER_TIMEOUT: invalid duration "5 sec" (use Go syntax such as 5s, 1m)`},
		{"duration unitless", []string{"WEBHOOK_TIMEOUT", "15"}, `config: WEBHOOK_TIMEOUT: invalid duration "15" (use Go syntax such as 5s, 1m)`},
		{"duration zero", []string{"PROVIDER_TIMEOUT", "0s"}, `config: PROVIDER_TIMEOUT must be positive (got 0s)`},
		{"duration negative", []string{"MAX_CALL_DURATION", "-1h"}, `config: MAX_CALL_DURATION must be positive (got -1h)`},
		{"sweep zero", []string{"RECOVERY_SWEEP_INTERVAL", "0"}, `config: RECOVERY_SWEEP_INTERVAL must be positive (got 0)`},
		{"overdue min", []string{"OVERDUE_SCAN_INTERVAL", "500ms"}, `config: OVERDUE_SCAN_INTERVAL must be at least 1s`},
		{"livekit url only", []string{"LIVEKIT_URL", "https://lk.example.com"}, `config: LIVEKIT_URL requires LIVEKIT_API_KEY and LIVEKIT_API_SECRET`},
		{"livekit no secret", []string{"LIVEKIT_URL", "https://lk.example.com", "LIVEKIT_API_KEY", "k"}, `config: LIVEKIT_URL requires LIVEKIT_API_KEY and LIVEKIT_API_SECRET`},
		{"livekit half pair", []string{"LIVEKIT_API_SECRET", "s"}, `config: LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set together`},
		{"livekit scheme", []string{"LIVEKIT_URL", "grpc://lk", "LIVEKIT_API_KEY", "k", "LIVEKIT_API_SECRET", "s"}, `config: LIVEKIT_URL: invalid URL "grpc://lk" (must be an absolute http(s):// or ws(s):// URL)`},
		{"key short", []string{"ENCRYPTION_KEY", base64.StdEncoding.EncodeToString(make([]byte, 12))}, `config: ENCRYPTION_KEY must be 32 bytes, base64-encoded (got 12 bytes)`},
		{"key not base64", []string{"ENCRYPTION_KEY", "not base64!"}, `config: ENCRYPTION_KEY must be 32 bytes, base64-encoded (not valid base64; generate one with: openssl rand -base64 32)`},
		{"jwks url", []string{"JWT_JWKS_URL", "jwks.json"}, `config: JWT_JWKS_URL: invalid URL "jwks.json" (must be an absolute http:// or https:// URL)`},
		{"schedule syntax", []string{"WEBHOOK_RETRY_SCHEDULE", "5s,5 min"}, `config: WEBHOOK_RETRY_SCHEDULE: invalid duration "5 min" (use Go syntax such as 5s, 1m)`},
		{"schedule zero", []string{"WEBHOOK_RETRY_SCHEDULE", "5s,0s"}, `config: WEBHOOK_RETRY_SCHEDULE: every delay must be positive (got 0s)`},
		{"schedule empty entry", []string{"WEBHOOK_RETRY_SCHEDULE", "5s,,1m"}, `config: WEBHOOK_RETRY_SCHEDULE: empty entry (use comma-separated durations such as 5s,5m,30m)`},
		{"bool", []string{"WEBHOOK_ALLOW_PRIVATE_NETWORKS", "yes"}, `config: WEBHOOK_ALLOW_PRIVATE_NETWORKS: invalid boolean "yes" (use true or false)`},
		{"bool dashboard", []string{"DASHBOARD_READ_ONLY", "on"}, `config: DASHBOARD_READ_ONLY: invalid boolean "on" (use true or false)`},
		{"bool legacy", []string{"LEGACY_EMPTY_ERROR_RESPONSES", "2"}, `config: LEGACY_EMPTY_ERROR_RESPONSES: invalid boolean "2" (use true or false)`},
		{"dashboard pair", []string{"DASHBOARD_USERNAME", "admin"}, `config: DASHBOARD_USERNAME and DASHBOARD_PASSWORD must be set together`},
		{"dashboard pair password", []string{"DASHBOARD_PASSWORD", "pw"}, `config: DASHBOARD_USERNAME and DASHBOARD_PASSWORD must be set together`},
		{"llm no model", []string{"ANALYSIS_LLM_BASE_URL", "https://api.openai.com/v1"}, `config: ANALYSIS_LLM_BASE_URL and ANALYSIS_LLM_MODEL must be set together`},
		{"llm no base", []string{"ANALYSIS_LLM_MODEL", "gpt"}, `config: ANALYSIS_LLM_BASE_URL and ANALYSIS_LLM_MODEL must be set together`},
		{"llm key alone", []string{"ANALYSIS_LLM_API_KEY", "sk-1"}, `config: ANALYSIS_LLM_API_KEY requires ANALYSIS_LLM_BASE_URL and ANALYSIS_LLM_MODEL`},
		{"llm url", []string{"ANALYSIS_LLM_BASE_URL", "api.openai.com", "ANALYSIS_LLM_MODEL", "gpt"}, `config: ANALYSIS_LLM_BASE_URL: invalid URL "api.openai.com" (must be an absolute http:// or https:// URL)`},
		{"jwt secret short", []string{"JWT_SECRET", "s"}, `config: JWT_SECRET must be at least 32 bytes (got 1)`},
		{"jwt secret 31", []string{"JWT_SECRET", strings.Repeat("x", 31)}, `config: JWT_SECRET must be at least 32 bytes (got 31)`},
		{"rate negative", []string{"RATE_LIMIT_PER_SECOND", "-1"}, `config: RATE_LIMIT_PER_SECOND must be an integer from 0 to 1000000 (got "-1")`},
		{"rate text", []string{"RATE_LIMIT_PER_SECOND", "fast"}, `config: RATE_LIMIT_PER_SECOND must be an integer from 0 to 1000000 (got "fast")`},
		{"rate fraction", []string{"RATE_LIMIT_PER_SECOND", "2.5"}, `config: RATE_LIMIT_PER_SECOND must be an integer from 0 to 1000000 (got "2.5")`},
		{"burst huge", []string{"RATE_LIMIT_BURST", "10000001"}, `config: RATE_LIMIT_BURST must be an integer from 0 to 1000000 (got "10000001")`},
		{"endpoints zero", []string{"WEBHOOK_ENDPOINTS_PER_WORKSPACE", "0"}, `config: WEBHOOK_ENDPOINTS_PER_WORKSPACE must be an integer from 1 to 1000000 (got "0")`},
		{"endpoints text", []string{"WEBHOOK_ENDPOINTS_PER_WORKSPACE", "many"}, `config: WEBHOOK_ENDPOINTS_PER_WORKSPACE must be an integer from 1 to 1000000 (got "many")`},
		{"disable after unitless", []string{"WEBHOOK_DISABLE_AFTER", "120"}, `config: WEBHOOK_DISABLE_AFTER: invalid duration "120" (use Go syntax such as 5s, 1m)`},
		{"disable after short", []string{"WEBHOOK_DISABLE_AFTER", "30s"}, `config: WEBHOOK_DISABLE_AFTER must be at least 1m0s`},
		{"retention zero", []string{"WEBHOOK_DELIVERY_RETENTION", "0h"}, `config: WEBHOOK_DELIVERY_RETENTION must be positive (got 0h)`},
		{"retention short", []string{"WEBHOOK_DELIVERY_RETENTION", "10m"}, `config: WEBHOOK_DELIVERY_RETENTION must be at least 1h0m0s`},
		{"concurrency zero", []string{"WORKER_CONCURRENCY", "0"}, `config: WORKER_CONCURRENCY must be a positive integer`},
		{"concurrency text", []string{"WORKER_CONCURRENCY", "ten"}, `config: WORKER_CONCURRENCY must be a positive integer`},
		{"log level", []string{"LOG_LEVEL", "verbose"}, `config: LOG_LEVEL must be one of debug, info, warn, error`},
		{"log format", []string{"LOG_FORMAT", "xml"}, `config: LOG_FORMAT must be "json" or "text"`},
		{"first error wins", []string{"DATABASE_URL", "", "LOG_FORMAT", "xml"}, `config: DATABASE_URL is required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(env(tt.kv...))
			if err == nil {
				t.Fatalf("Load: no error, want %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("Load error\n got %q\nwant %q", err.Error(), tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err.Error())
			}
			if !reflect.DeepEqual(got, Config{}) {
				t.Errorf("Load returned a non-zero Config with its error")
			}
		})
	}
}

func TestErrorsNeverEchoSecrets(t *testing.T) {
	tests := []struct {
		name   string
		kv     []string
		secret string
	}{
		{"database", []string{"DATABASE_URL", "mysql://u:s3cr3t@h/db"}, "s3cr3t"},
		{"redis", []string{"REDIS_URL", "redis://:s3cr3t@h:1/x"}, "s3cr3t"},
		{"redis scheme", []string{"REDIS_URL", "http://:s3cr3t@h:1"}, "s3cr3t"},
		{"url userinfo", []string{"PUBLIC_BASE_URL", "ftp://u:s3cr3t@h"}, "s3cr3t"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(env(tt.kv...))
			if err == nil {
				t.Fatal("Load: no error")
			}
			if strings.Contains(err.Error(), tt.secret) {
				t.Errorf("error leaks the secret: %q", err.Error())
			}
		})
	}
}

func TestLoadDB(t *testing.T) {
	tests := []struct {
		name    string
		kv      []string
		wantErr string
	}{
		{"no redis needed", []string{"REDIS_URL", ""}, ""},
		{"database still required", []string{"DATABASE_URL", "", "REDIS_URL", ""}, "config: DATABASE_URL is required"},
		{"set variables still validated", []string{"REDIS_URL", "", "PROVIDER_TIMEOUT", "5 sec"}, `config: PROVIDER_TIMEOUT: invalid duration "5 sec" (use Go syntax such as 5s, 1m)`},
		{"set redis still validated", []string{"REDIS_URL", "localhost:6379"}, `config: REDIS_URL must start with redis:// or rediss://`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadDB(env(tt.kv...))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.wantErr {
				t.Errorf("LoadDB error = %q, want %q", got, tt.wantErr)
			}
		})
	}
}

func TestLoadNilGetenv(t *testing.T) {
	if _, err := Load(nil); err == nil {
		t.Error("Load(nil): no error")
	}
}

func TestDefaultIsFresh(t *testing.T) {
	a := Default()
	a.WebhookRetrySchedule[0] = time.Hour
	if b := Default(); b.WebhookRetrySchedule[0] != 5*time.Second {
		t.Error("Default shares its retry schedule between calls")
	}
}

// logConfig renders cfg through a JSON slog handler and returns the "config" group.
func logConfig(t *testing.T, cfg Config) (string, map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", "config", cfg)
	var line struct {
		Config map[string]any `json:"config"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	return buf.String(), line.Config
}

func TestLogValueMasksSecrets(t *testing.T) {
	secrets := []string{"dbs3cret", "r3dispw", "tw1liotok", "lks3cret", "jwts3cret", "d4shpw", "sk-llmkey", "qs3cret", "dsnpw"}
	keyBytes := []byte("0123456789abcdefENCRYPTIONKEY!!!")
	cfg, err := Load(env(
		"DATABASE_URL", "postgres://endcall:dbs3cret@db:5432/endcall?sslmode=disable&sslpassword=qs3cret",
		"REDIS_URL", "rediss://default:r3dispw@cache:6380/1",
		"TWILIO_ACCOUNT_SID", "AC1",
		"TWILIO_AUTH_TOKEN", "tw1liotok",
		"LIVEKIT_URL", "https://lk",
		"LIVEKIT_API_KEY", "lkkey",
		"LIVEKIT_API_SECRET", "lks3cret",
		"ENCRYPTION_KEY", base64.StdEncoding.EncodeToString(keyBytes),
		"JWT_SECRET", "jwts3cret-jwts3cret-jwts3cret-0123",
		"DASHBOARD_USERNAME", "admin",
		"DASHBOARD_PASSWORD", "d4shpw",
		"ANALYSIS_LLM_BASE_URL", "https://llm.example.com/v1",
		"ANALYSIS_LLM_API_KEY", "sk-llmkey",
		"ANALYSIS_LLM_MODEL", "m",
	))
	if err != nil {
		t.Fatal(err)
	}
	out, got := logConfig(t, cfg)
	secrets = append(secrets, string(keyBytes), base64.StdEncoding.EncodeToString(keyBytes))
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("log line contains secret %q: %s", s, out)
		}
	}

	want := map[string]any{
		"DATABASE_URL":                   "postgres://endcall:****@db:5432/endcall?sslmode=disable&sslpassword=****",
		"REDIS_URL":                      "rediss://default:****@cache:6380/1",
		"TWILIO_ACCOUNT_SID":             "AC1",
		"TWILIO_AUTH_TOKEN":              "****",
		"LIVEKIT_API_KEY":                "lkkey",
		"LIVEKIT_API_SECRET":             "****",
		"ENCRYPTION_KEY":                 "****",
		"JWT_SECRET":                     "****",
		"DASHBOARD_USERNAME":             "admin",
		"DASHBOARD_PASSWORD":             "****",
		"ANALYSIS_LLM_API_KEY":           "****",
		"PROVIDER_TIMEOUT":               "5s",
		"MAX_CALL_DURATION":              "1h",
		"WEBHOOK_RETRY_SCHEDULE":         "5s,5m,30m,2h,5h,10h,10h",
		"WORKER_CONCURRENCY":             float64(20),
		"LOG_LEVEL":                      "info",
		"WEBHOOK_ALLOW_PRIVATE_NETWORKS": false,
	}
	for k, w := range want {
		if g := got[k]; g != w {
			t.Errorf("%s = %#v, want %#v", k, g, w)
		}
	}
}

func TestLogValueUnsetSecretsAreEmpty(t *testing.T) {
	cfg, err := Load(env())
	if err != nil {
		t.Fatal(err)
	}
	_, got := logConfig(t, cfg)
	for _, k := range []string{"TWILIO_AUTH_TOKEN", "LIVEKIT_API_SECRET", "ENCRYPTION_KEY", "JWT_SECRET", "DASHBOARD_PASSWORD", "ANALYSIS_LLM_API_KEY"} {
		v, ok := got[k]
		if !ok || v != "" {
			t.Errorf("%s = %#v, want \"\"", k, v)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"postgres://u:p@h/db", "postgres://u:****@h/db"},
		{"redis://:p@h:6379/0", "redis://:****@h:6379/0"},
		{"postgres://h/db?password=p&user=u", "postgres://h/db?password=****&user=u"},
		{"host=h password=p user=u", "host=h password=**** user=u"},
		{"host=h password = 'a \\' b' user=u", "host=h password = **** user=u"},
		{"https://example.com/x", "https://example.com/x"},
		{"http://u:p@h:bad port", "****"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLogger(t *testing.T) {
	tests := []struct {
		name       string
		level      string
		format     string
		wantDebug  bool
		wantInfo   bool
		wantPrefix string
	}{
		{"default json info", "", "", false, true, "{"},
		{"debug text", "debug", "text", true, true, "time="},
		{"warn", "WARN", "json", false, false, ""},
		{"error", "Error", "text", false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(env("LOG_LEVEL", tt.level, "LOG_FORMAT", tt.format))
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			log := cfg.Logger(&buf)
			log.Debug("dbg-line")
			log.Info("info-line")
			out := buf.String()
			if got := strings.Contains(out, "dbg-line"); got != tt.wantDebug {
				t.Errorf("debug logged = %v, want %v: %q", got, tt.wantDebug, out)
			}
			if got := strings.Contains(out, "info-line"); got != tt.wantInfo {
				t.Errorf("info logged = %v, want %v: %q", got, tt.wantInfo, out)
			}
			if tt.wantPrefix != "" && !strings.HasPrefix(out, tt.wantPrefix) {
				t.Errorf("output %q does not start with %q", out, tt.wantPrefix)
			}
		})
	}
}

func TestLoggerZeroConfig(t *testing.T) {
	var buf bytes.Buffer
	Config{}.Logger(&buf).Info("hello")
	if !json.Valid(bytes.TrimSpace(buf.Bytes())) {
		t.Errorf("zero Config logger is not JSON: %q", buf.String())
	}
}

func TestCheckTaskTimeouts(t *testing.T) {
	tasks := TaskTimeouts{Hangup: 30 * time.Second, Deliver: time.Minute, Margin: 10 * time.Second}
	tests := []struct {
		name string
		kv   []string
		want string
	}{
		{"defaults", nil, ""},
		{"provider at the bound", []string{"PROVIDER_TIMEOUT", "20s"}, ""},
		{"webhook at the bound", []string{"WEBHOOK_TIMEOUT", "50s"}, ""},
		{"provider over", []string{"PROVIDER_TIMEOUT", "21s"},
			"config: PROVIDER_TIMEOUT must be at most 20s (the call:hangup task times out after 30s), got 21s"},
		{"webhook over", []string{"WEBHOOK_TIMEOUT", "2m"},
			"config: WEBHOOK_TIMEOUT must be at most 50s (the webhook:deliver task times out after 1m0s), got 2m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(env(tt.kv...))
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.CheckTaskTimeouts(tasks)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("CheckTaskTimeouts: %v", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Errorf("CheckTaskTimeouts = %v, want %s", err, tt.want)
			}
		})
	}
}
