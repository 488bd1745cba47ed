package api

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/endcall/endcall"
)

type workspaceKey struct{}

// workspaceFrom returns the authenticated workspace of a request.
func workspaceFrom(ctx context.Context) string {
	id, _ := ctx.Value(workspaceKey{}).(string)
	return id
}

// JWTConfig enables bearer JWTs. Secret enables HS256; Issuer and Audience,
// when set, must match the token's claims.
type JWTConfig struct {
	Secret   []byte
	Issuer   string
	Audience string
	// Keyfunc, when set, verifies RS256/ES256 tokens (a JWKS).
	Keyfunc jwt.Keyfunc
}

var errBadToken = endcall.Errorf(endcall.EUNAUTHORIZED, "Invalid or missing credentials.")

// authenticate resolves the bearer token to a workspace: an API key, or a
// JWT carrying workspace_id and exp. The request then counts against the
// workspace's rate limit, and then the route's query parameters are checked,
// so that only a caller with access learns of a bad one.
func (s *Server) authenticate(next http.Handler) http.Handler {
	next = s.knownQuery(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			s.fail(w, r, errBadToken)
			return
		}
		var workspaceID string
		var err error
		if strings.Count(token, ".") == 2 {
			workspaceID, err = s.verifyJWT(token)
		} else {
			workspaceID, err = s.keys.lookup(r.Context(), token)
		}
		if err == nil {
			err = s.limiter.allow(r.Context(), w.Header(), workspaceID)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), workspaceKey{}, workspaceID)))
	})
}

type workspaceClaims struct {
	WorkspaceID string `json:"workspace_id"`
	jwt.RegisteredClaims
}

func (s *Server) verifyJWT(token string) (string, error) {
	cfg := s.jwt
	if cfg.Secret == nil && cfg.Keyfunc == nil {
		return "", errBadToken
	}
	methods := []string{}
	if cfg.Secret != nil {
		methods = append(methods, "HS256")
	}
	if cfg.Keyfunc != nil {
		methods = append(methods, "RS256", "ES256")
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithExpirationRequired(), jwt.WithLeeway(30 * time.Second)}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	var claims workspaceClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		if t.Method.Alg() == "HS256" {
			return cfg.Secret, nil
		}
		return cfg.Keyfunc(t)
	}, opts...)
	if err != nil {
		return "", errBadToken
	}
	id, ok := parseUUID(claims.WorkspaceID)
	if !ok {
		return "", errBadToken
	}
	return id, nil
}

// KeyCacheTTL is how long a server trusts an API key it has verified: a
// revoked key is refused by every server within it.
const KeyCacheTTL = 20 * time.Second

// keyCache remembers recently verified API keys for a short while, so that
// authentication does not cost a database round trip on every request. An
// entry also expires at the end of its minute, so that the first use in
// each minute reaches the database, which records it as the key's last use.
type keyCache struct {
	resolve func(ctx context.Context, key string) (string, error)
	now     func() time.Time
	mu      sync.Mutex
	entries map[string]cachedKey
}

type cachedKey struct {
	workspaceID string
	expires     time.Time
}

const maxCachedKeys = 10000

func (c *keyCache) lookup(ctx context.Context, key string) (string, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.workspaceID, nil
	}
	id, err := c.resolve(ctx, key)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if len(c.entries) >= maxCachedKeys {
		clear(c.entries)
	}
	expires := now.Add(KeyCacheTTL)
	if next := now.Truncate(time.Minute).Add(time.Minute); next.Before(expires) {
		expires = next
	}
	c.entries[key] = cachedKey{workspaceID: id, expires: expires}
	c.mu.Unlock()
	return id, nil
}
