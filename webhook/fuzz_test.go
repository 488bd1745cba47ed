package webhook

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"testing"

	"github.com/endcall/endcall"
)

// stdlibRefused is an oracle independent of refusedRanges, built on the
// standard library's classification plus the blocks it does not name.
func stdlibRefused(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	ip := net.IP(a.AsSlice())
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return true
	}
	if a.Is4() {
		b := a.As4()
		return b[0] == 0 || // 0.0.0.0/8
			(b[0] == 100 && b[1]&0xc0 == 64) || // 100.64.0.0/10
			a == netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	return false
}

// FuzzValidateURL never touches the network: names fail to resolve at
// once, so only literal public IPs may pass.
func FuzzValidateURL(f *testing.F) {
	for _, s := range []string{
		"http://127.0.0.1/", "https://[::1]:8443/x", "http://10.0.0.1", "http://[::ffff:127.0.0.1]/",
		"http://[::ffff:7f00:1]/", "http://[fe80::1%25eth0]/", "http://169.254.169.254/latest",
		"http://100.64.0.1/", "http://0.0.0.0/", "http://[::]/", "https://93.184.216.34/hook",
		"https://example.com/hook", "http://localhost/", "http://127.1/", "http://0x7f000001/",
		"http://user:pw@1.2.3.4/", "ftp://1.2.3.4/", "http://[64:ff9b::7f00:1]/", "http://[2002:a00:1::]/",
		"http://1.1.1.1:65536/", "http://%31%32%37.0.0.1/", "http:1.2.3.4", "//1.2.3.4/",
	} {
		f.Add(s)
	}
	res := failingResolver()
	f.Fuzz(func(t *testing.T, raw string) {
		ctx := context.Background()
		err := ValidateURL(ctx, raw, false, res)
		if err != nil {
			var e *endcall.Error
			if !errors.As(err, &e) || e.Code != endcall.EINVALID || e.Message == "" {
				t.Fatalf("ValidateURL(%q): got %#v, want an *endcall.Error with code %q and a message", raw, err, endcall.EINVALID)
			}
		}
		_ = ValidateURL(ctx, raw, true, res) // must not panic either
		if len(raw) > MaxURLLength {
			if err == nil {
				t.Fatalf("ValidateURL of a %d-byte URL: got nil, want a refusal", len(raw))
			}
			return
		}

		u, perr := url.Parse(raw)
		var literal netip.Addr
		isLiteral := false
		if perr == nil {
			if a, aerr := netip.ParseAddr(u.Hostname()); aerr == nil {
				literal, isLiteral = a, true
			}
		}
		if isLiteral && stdlibRefused(literal) && err == nil {
			t.Fatalf("ValidateURL(%q): got nil, want a refusal: host %s is not public", raw, literal)
		}
		if err == nil && !isLiteral {
			t.Fatalf("ValidateURL(%q): got nil without DNS, want a refusal for a non-literal host", raw)
		}
		if err == nil && controlPublicOnly("tcp", net.JoinHostPort(literal.String(), "443"), nil) != nil {
			t.Fatalf("ValidateURL(%q) accepted %s but the dialer would refuse it", raw, literal)
		}
	})
}
