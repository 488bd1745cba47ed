package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/endcall/endcall"
)

// MaxURLLength bounds a webhook URL; longer ones are refused at registration.
const MaxURLLength = 2048

// refusedRange is an address block that webhooks may not target unless
// private networks are allowed, with the word used in error messages.
type refusedRange struct {
	prefix netip.Prefix
	kind   string
}

// refusedRanges are checked in order after IPv4-mapped IPv6 addresses are
// unmapped; the first match names the refusal.
var refusedRanges = func() []refusedRange {
	r := []struct{ cidr, kind string }{
		{"0.0.0.0/32", "unspecified"},
		{"0.0.0.0/8", "reserved (this-network)"},
		{"10.0.0.0/8", "private"},
		{"100.64.0.0/10", "carrier-grade NAT"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local"},
		{"172.16.0.0/12", "private"},
		{"192.0.0.0/24", "reserved (IETF protocol assignments)"},
		{"192.168.0.0/16", "private"},
		{"198.18.0.0/15", "reserved (benchmarking)"},
		{"224.0.0.0/4", "multicast"},
		{"255.255.255.255/32", "broadcast"},
		{"240.0.0.0/4", "reserved"},
		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"::/96", "reserved (IPv4-compatible)"},
		// Local-use NAT64: where the IPv4 address sits depends on the
		// operator's prefix length, so the whole block is refused.
		{"64:ff9b:1::/48", "reserved (local-use NAT64)"},
		{"100::/64", "reserved (discard-only)"},
		{"fc00::/7", "private"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "private (site-local)"},
		{"ff00::/8", "multicast"},
	}
	out := make([]refusedRange, len(r))
	for i, e := range r {
		out[i] = refusedRange{netip.MustParsePrefix(e.cidr), e.kind}
	}
	return out
}()

// embeddingPrefixes carry an IPv4 address inside an IPv6 one (NAT64 and
// 6to4); the embedded address is judged like a plain IPv4 one.
var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// refusedKind returns why ip may not be a webhook target ("loopback",
// "private", ...), or "" when it is a public address.
func refusedKind(ip netip.Addr) string {
	if !ip.IsValid() {
		return "invalid"
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64Prefix.Contains(ip):
			if k := refusedKind(netip.AddrFrom4([4]byte(b[12:16]))); k != "" {
				return k + " (NAT64)"
			}
		case sixToFour.Contains(ip):
			if k := refusedKind(netip.AddrFrom4([4]byte(b[2:6]))); k != "" {
				return k + " (6to4)"
			}
		}
	}
	for _, r := range refusedRanges {
		if r.prefix.Contains(ip) {
			return r.kind
		}
	}
	return ""
}

// ValidateURL checks a webhook URL when an endpoint is registered: http or
// https, a host, no userinfo; and, unless allowPrivate, that the host is not
// and does not resolve to a loopback, private, link-local, CGNAT,
// unspecified, multicast or otherwise internal address. A nil resolver means
// net.DefaultResolver. Every refusal is an *endcall.Error with code
// EINVALID whose message can be shown to the caller.
func ValidateURL(ctx context.Context, raw string, allowPrivate bool, resolver *net.Resolver) error {
	if raw == "" {
		return endcall.Errorf(endcall.EINVALID, "webhook URL is required")
	}
	if len(raw) > MaxURLLength {
		return endcall.Errorf(endcall.EINVALID, "webhook URL is longer than %d characters", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return endcall.Errorf(endcall.EINVALID, "webhook URL is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return endcall.Errorf(endcall.EINVALID, "webhook URL must use http or https")
	}
	if u.User != nil {
		return endcall.Errorf(endcall.EINVALID, "webhook URL must not contain a username or password")
	}
	host := u.Hostname()
	if host == "" {
		return endcall.Errorf(endcall.EINVALID, "webhook URL must have a host")
	}
	if p := u.Port(); p != "" {
		if n, err := parsePort(p); err != nil || n == 0 {
			return endcall.Errorf(endcall.EINVALID, "webhook URL has an invalid port %q", p)
		}
	}

	if ip, err := netip.ParseAddr(host); err == nil {
		if allowPrivate {
			return nil
		}
		if kind := refusedKind(ip); kind != "" {
			return endcall.Errorf(endcall.EINVALID,
				"webhook URL host is a %s address (%s); webhooks must target a public address", kind, ip.Unmap())
		}
		return nil
	}
	if looksNumeric(host) {
		// "127.1", "0x7f.0.0.1", "2130706433": some resolvers read these as
		// IPv4 addresses, so they could smuggle a private one past the
		// literal check. No real DNS name ends in a numeric label.
		return endcall.Errorf(endcall.EINVALID,
			"webhook URL host %q is not a valid host name or IP address", host)
	}

	if isLocalhost(host) {
		// RFC 6761: these names are loopback whatever DNS says.
		if allowPrivate {
			return nil
		}
		return endcall.Errorf(endcall.EINVALID,
			"webhook URL host %q is a loopback name; webhooks must target a public address", host)
	}

	if resolver == nil {
		resolver = net.DefaultResolver
	}
	addrs, err := resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return dnsError(host, err)
	}
	if len(addrs) == 0 {
		return endcall.Errorf(endcall.EINVALID, "webhook URL host %q has no IP address", host)
	}
	if allowPrivate {
		return nil
	}
	for _, ip := range addrs {
		if kind := refusedKind(ip); kind != "" {
			return endcall.Errorf(endcall.EINVALID,
				"webhook URL host resolves to a %s address (%s); webhooks must target a public address", kind, ip.Unmap())
		}
	}
	return nil
}

// dnsError turns a failed lookup into a message without the resolver's
// own address or other internals.
func dnsError(host string, err error) error {
	var de *net.DNSError
	switch {
	case errors.As(err, &de) && de.IsNotFound:
		return endcall.Errorf(endcall.EINVALID, "webhook URL host %q does not exist (DNS: no such host)", host)
	case errors.As(err, &de) && de.IsTimeout, errors.Is(err, context.DeadlineExceeded):
		return endcall.Errorf(endcall.EINVALID, "webhook URL host %q could not be resolved (DNS timeout); try again later", host)
	default:
		return endcall.Errorf(endcall.EINVALID, "webhook URL host %q could not be resolved (DNS lookup failed)", host)
	}
}

// looksNumeric reports whether host's last label is a number (decimal,
// octal or 0x-hex), which makes it an IPv4 address in the WHATWG URL
// standard and in inet_aton, but never a DNS name.
func looksNumeric(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if len(last) > 2 && (last[:2] == "0x" || last[:2] == "0X") {
		last = last[2:]
		for i := 0; i < len(last); i++ {
			c := last[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}

// isLocalhost reports whether host is "localhost" or a name under it.
func isLocalhost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// parsePort parses a decimal TCP port.
func parsePort(p string) (int, error) {
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return 0, fmt.Errorf("invalid port %q", p)
		}
		n = n*10 + int(p[i]-'0')
		if n > 65535 {
			return 0, fmt.Errorf("port %q out of range", p)
		}
	}
	return n, nil
}
