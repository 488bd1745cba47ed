package dashboard

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Failed logins from one address: a burst of loginBurst, then one every
// loginEvery. An address that has used them up is answered 429 until its
// allowance refills, whatever credentials it sends.
const (
	loginBurst = 10
	loginEvery = 6 * time.Second
	// maxAddresses bounds the addresses remembered at once; beyond it the
	// newcomers share one allowance.
	maxAddresses = 10000
)

// loginLimiter slows down failed logins per client address. An address is
// forgotten once its allowance has refilled, so memory stays bounded by
// the addresses that failed recently.
type loginLimiter struct {
	mu       sync.Mutex
	now      func() time.Time
	byAddr   map[string]*rate.Limiter
	overflow *rate.Limiter
	swept    time.Time
}

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, byAddr: map[string]*rate.Limiter{},
		overflow: rate.NewLimiter(rate.Every(loginEvery), loginBurst)}
}

// wait returns how long addr must wait before its next login attempt is
// considered; zero when it may try now.
func (l *loginLimiter) wait(addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.byAddr[addr]
	if lim == nil {
		return 0
	}
	tokens := lim.TokensAt(l.now())
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) * float64(loginEvery))
}

// fail records a failed login from addr.
func (l *loginLimiter) fail(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	lim := l.byAddr[addr]
	if lim == nil {
		if len(l.byAddr) >= maxAddresses {
			l.overflow.AllowN(now, 1)
			return
		}
		lim = rate.NewLimiter(rate.Every(loginEvery), loginBurst)
		l.byAddr[addr] = lim
	}
	lim.AllowN(now, 1)
}

// sweep forgets addresses whose allowance has refilled, at most once a
// refill period. l.mu must be held.
func (l *loginLimiter) sweep(now time.Time) {
	if now.Sub(l.swept) < loginEvery*loginBurst {
		return
	}
	l.swept = now
	for addr, lim := range l.byAddr {
		if lim.TokensAt(now) >= loginBurst {
			delete(l.byAddr, addr)
		}
	}
}

// clientAddress is the address a login attempt is counted against: the
// connection's peer (forwarding headers can be forged), an IPv6 client by
// its /64, which one host typically holds whole.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() != nil {
		return host
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// sameOrigin reports whether a request that changes something comes from
// the dashboard's own pages: its Origin, else its Referer, must be the
// origin the request was sent to (scheme and Host), or PUBLIC_BASE_URL's.
// Browsers resend Basic credentials to any page that posts here, so the
// credentials alone do not show that the operator meant the request.
func sameOrigin(r *http.Request, public *url.URL) bool {
	from := r.Header.Get("Origin")
	if from == "" {
		from = r.Header.Get("Referer")
	}
	u, err := url.Parse(from)
	if from == "" || err != nil || u.Host == "" {
		return false
	}
	got := origin(u.Scheme, u.Host)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if public != nil {
		if got == origin(public.Scheme, public.Host) {
			return true
		}
		if strings.EqualFold(public.Host, r.Host) {
			// Behind a proxy that ends TLS, the request arrives as http.
			scheme = public.Scheme
		}
	}
	return got == origin(scheme, r.Host)
}

// origin normalises a scheme and host as browsers send them: lower case,
// without the scheme's default port.
func origin(scheme, host string) string {
	scheme, host = strings.ToLower(scheme), strings.ToLower(host)
	if h, port, err := net.SplitHostPort(host); err == nil {
		if p, _ := strconv.Atoi(port); (scheme == "http" && p == 80) || (scheme == "https" && p == 443) {
			host = h
			if strings.Contains(h, ":") {
				host = "[" + h + "]"
			}
		}
	}
	return scheme + "://" + host
}

// safeMethod reports whether method only reads.
func safeMethod(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}
