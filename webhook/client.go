package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// UserAgent identifies endcall's deliveries to receivers.
const UserAgent = "endcall-webhooks/1"

// maxResponseRead caps how much of a receiver's answer is read: enough to
// let a small response's connection be reused, never a whole download.
const maxResponseRead = 16 << 10

// maxRetryAfter caps a receiver's Retry-After: a receiver may slow its
// deliveries down, but not hold one back for longer than an hour.
const maxRetryAfter = time.Hour

// ErrBlockedAddress is wrapped by the connection error when the delivery
// client refuses to connect to an internal address; errors.Is finds it in
// the error of a failed request.
var ErrBlockedAddress = errors.New("webhook: connection to a non-public address refused")

// NewHTTPClient returns the client deliveries are sent with. timeout bounds
// one attempt from connect to the last byte of the answer. Redirects are
// never followed, no proxy is used, and unless allowPrivate every connection
// is checked against the IP actually dialled, which defeats DNS rebinding
// after ValidateURL accepted the host. Connections are pooled per host,
// since many deliveries go to few receivers.
func NewHTTPClient(timeout time.Duration, allowPrivate bool) *http.Client {
	dialer := &net.Dialer{
		Timeout:   min(timeout, 10*time.Second),
		KeepAlive: 30 * time.Second,
	}
	if !allowPrivate {
		dialer.Control = controlPublicOnly
	}
	transport := &http.Transport{
		Proxy:                  nil, // a proxy would hide the real target from the Control check
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    32,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    min(timeout, 10*time.Second),
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// controlPublicOnly runs after the socket is created and before it connects,
// with the literal IP about to be dialled.
func controlPublicOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrBlockedAddress, address)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrBlockedAddress, address)
	}
	if kind := refusedKind(ip); kind != "" {
		return fmt.Errorf("%w: %s is a %s address", ErrBlockedAddress, ip.Unmap(), kind)
	}
	return nil
}

// Attempt is the outcome of one delivery attempt, as recorded in the
// delivery log and used to schedule the next one.
type Attempt struct {
	StatusCode int           // 0 when no response was received
	Err        string        // why the attempt failed; "" on success
	Duration   time.Duration // from sending to the answer's last byte read
	RetryAfter time.Duration // the receiver's Retry-After on 429/503, capped at 1 h; 0 if none
	Gone       bool          // the receiver answered 410: disable the endpoint
	Body       string        // the first KiB of the answer, as valid UTF-8 text without NUL
}

// MaxResponseBody is how much of a receiver's answer an attempt records.
const MaxResponseBody = 1 << 10

// OK reports whether the receiver accepted the delivery (a 2xx answer).
func (a Attempt) OK() bool { return a.StatusCode >= 200 && a.StatusCode <= 299 }

// Send makes one delivery attempt: a POST of body to url with the Standard
// Webhooks headers for msgID, ts and signature (from Sign with the same
// msgID and ts). It never returns an error: every failure is described in
// the Attempt, because every failure is recorded and retried the same way.
// Only the first 16 KiB of the answer are read; a receiver's status decides
// success even if its body cannot be read.
func Send(ctx context.Context, c *http.Client, url, msgID string, ts time.Time, body []byte, signature string) Attempt {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Attempt{Err: "invalid webhook URL"}
	}
	// Set directly: the spec writes these names in lower case and Go sends
	// map keys as they are.
	req.Header = http.Header{
		"Content-Type":      {"application/json"},
		"User-Agent":        {UserAgent},
		"webhook-id":        {msgID},
		"webhook-timestamp": {strconv.FormatInt(ts.Unix(), 10)},
		"webhook-signature": {signature},
	}
	resp, err := c.Do(req)
	if err != nil {
		return Attempt{Err: describeError(err, c.Timeout), Duration: time.Since(start)}
	}
	head := make([]byte, MaxResponseBody)
	n, _ := io.ReadFull(resp.Body, head)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseRead-MaxResponseBody))
	_ = resp.Body.Close()
	a := Attempt{StatusCode: resp.StatusCode, Duration: time.Since(start), Body: bodyText(head[:n])}
	switch {
	case a.OK():
	case resp.StatusCode >= 300 && resp.StatusCode <= 399:
		a.Err = fmt.Sprintf("redirect (%s) not followed", resp.Status)
	default:
		a.Err = "unexpected status " + resp.Status
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		a.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	case http.StatusGone:
		a.Gone = true
	}
	return a
}

// describeError turns a client error into a short text for the delivery
// log, without repeating the URL (which may carry a token).
func describeError(err error, timeout time.Duration) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, ErrBlockedAddress):
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			return oe.Err.Error()
		}
		return err.Error()
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		if timeout > 0 {
			return "timeout after " + timeout.String()
		}
		return "timeout"
	}
	return err.Error()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// parseRetryAfter reads a Retry-After value, either delay-seconds or an
// HTTP date, relative to now. It returns 0 for a missing, invalid or past
// value, and at most maxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, maxRetryAfter))
}

// Host returns the host (and port, if any) of an endpoint URL, which task
// payloads and logs name instead of the URL, which may carry a token.
func Host(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Host
}

// bodyText makes the head of an answer storable as JSON text in Postgres:
// invalid UTF-8 (including a character cut at the 1 KiB mark) becomes
// U+FFFD and NUL, which jsonb cannot hold, is dropped.
func bodyText(b []byte) string {
	return strings.ReplaceAll(strings.ToValidUTF8(string(b), "\uFFFD"), "\x00", "")
}
