package webhook

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/endcall/endcall"
)

func testRecords() map[string][]netip.Addr {
	return map[string][]netip.Addr{
		"evil.example":     {netip.MustParseAddr("127.0.0.1")},
		"internal.example": {netip.MustParseAddr("10.0.0.5")},
		"metadata.example": {netip.MustParseAddr("169.254.169.254")},
		"ula.example":      {netip.MustParseAddr("fd00::1")},
		// One public and one private address: refused, since the dialer
		// could pick either.
		"mixed.example":  {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("192.168.1.1")},
		"public.example": {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("2606:2800:220:1:248:1893:25c8:1946")},
	}
}

func TestValidateURLAddresses(t *testing.T) {
	t.Parallel()
	dns := startFakeDNS(t, testRecords())
	res := dns.resolver()

	refused := []struct {
		url      string
		wantText string // part of the error message when refused
	}{
		{"http://127.0.0.1/hook", "loopback address (127.0.0.1)"},
		{"http://127.0.0.2:8080/hook", "loopback"},
		{"http://[::1]/hook", "loopback address (::1)"},
		{"https://10.0.0.1/hook", "private address (10.0.0.1)"},
		{"https://172.16.0.1/hook", "private address (172.16.0.1)"},
		{"https://172.31.255.255/hook", "private"},
		{"https://192.168.1.1/hook", "private address (192.168.1.1)"},
		{"https://100.64.0.1/hook", "carrier-grade NAT address (100.64.0.1)"},
		{"http://169.254.169.254/latest/meta-data/", "link-local address (169.254.169.254)"},
		{"http://0.0.0.0/hook", "unspecified address (0.0.0.0)"},
		{"http://0.1.2.3/hook", "this-network"},
		{"http://255.255.255.255/hook", "broadcast"},
		{"http://224.0.0.1/hook", "multicast"},
		{"http://[::]/hook", "unspecified"},
		{"http://[fc00::1]/hook", "private"},
		{"http://[fd12:3456::1]/hook", "private"},
		{"http://[fe80::1%25eth0]/hook", "link-local"},
		{"http://[ff02::1]/hook", "multicast"},
		{"http://[::ffff:127.0.0.1]/hook", "loopback address (127.0.0.1)"},
		{"http://[::ffff:10.0.0.1]/hook", "private address (10.0.0.1)"},
		{"http://[::ffff:169.254.169.254]/hook", "link-local"},
		{"http://[64:ff9b::a9fe:a9fe]/hook", "link-local"},
		{"http://[64:ff9b:1::a9fe:a9fe]/hook", "local-use NAT64"},
		{"http://[64:ff9b:1:7f00:1::]/hook", "local-use NAT64"},
		{"http://[64:ff9b:1:ffff:ffff:ffff:ffff:ffff]/hook", "local-use NAT64"},
		{"http://[2002:7f00:1::]/hook", "loopback"},
		{"http://localhost:9000/hook", "loopback"},
		{"http://LOCALHOST./hook", "loopback"},
		{"http://api.localhost/hook", "loopback"},
		{"http://evil.example/hook", "resolves to a loopback address (127.0.0.1)"},
		{"https://internal.example/hook", "resolves to a private address (10.0.0.5)"},
		{"https://metadata.example/hook", "link-local"},
		{"https://ula.example/hook", "resolves to a private address (fd00::1)"},
		{"https://mixed.example/hook", "resolves to a private address (192.168.1.1)"},
	}
	for _, tt := range refused {
		t.Run("refused "+tt.url, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := ValidateURL(ctx, tt.url, false, res)
			if got, want := endcall.ErrorCode(err), endcall.EINVALID; got != want {
				t.Fatalf("ValidateURL(%q, allowPrivate=false): got code %q (err %v), want %q", tt.url, got, err, want)
			}
			if msg := endcall.ErrorMessage(err); !strings.Contains(msg, tt.wantText) {
				t.Errorf("ValidateURL(%q): got message %q, want it to contain %q", tt.url, msg, tt.wantText)
			}
			if err := ValidateURL(ctx, tt.url, true, res); err != nil {
				t.Errorf("ValidateURL(%q, allowPrivate=true): got %v, want nil", tt.url, err)
			}
		})
	}
	t.Cleanup(func() { // after the parallel subtests
		if !dns.asked("evil.example") {
			t.Errorf("the fake DNS server was never asked for evil.example: resolution was not exercised")
		}
	})

	for _, u := range []string{
		"https://93.184.216.34/hook",
		"http://93.184.216.34:8080/a?b=c",
		"https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
		"https://public.example/hook",
		"HTTPS://public.example./x",
	} {
		t.Run("allowed "+u, func(t *testing.T) {
			t.Parallel()
			for _, allow := range []bool{false, true} {
				if err := ValidateURL(context.Background(), u, allow, res); err != nil {
					t.Errorf("ValidateURL(%q, allowPrivate=%v): got %v, want nil", u, allow, err)
				}
			}
		})
	}
}

// TestValidateURLLiteralNeedsNoDNS shows that a public literal is accepted
// without any lookup or connection.
func TestValidateURLLiteralNeedsNoDNS(t *testing.T) {
	t.Parallel()
	if err := ValidateURL(context.Background(), "https://93.184.216.34/hook", false, failingResolver()); err != nil {
		t.Errorf("got %v, want nil", err)
	}
}

func TestValidateURLShape(t *testing.T) {
	t.Parallel()
	dns := startFakeDNS(t, testRecords())
	tests := []struct {
		url      string
		wantText string
	}{
		{"", "required"},
		{"ftp://public.example/x", "http or https"},
		{"javascript:alert(1)", "http or https"},
		{"public.example/hook", "http or https"},
		{"//public.example/hook", "http or https"},
		{"http://", "must have a host"},
		{"http:///path", "must have a host"},
		{"http:public.example", "must have a host"},
		{"https://user:pass@public.example/", "username or password"},
		{"https://user@public.example/", "username or password"},
		{"https://public.example:99999/", "invalid port"},
		{"https://public.example:0/", "invalid port"},
		{"http://exa mple.com/", "not a valid URL"},
		{"https://" + strings.Repeat("a", MaxURLLength), "longer than"},
		{"http://127.1/", "not a valid host"},
		{"http://2130706433/", "not a valid host"},
		{"http://0x7f.0.0.1/", "not a valid host"},
		{"http://017700000001/", "not a valid host"},
		{"https://nx.example/hook", `"nx.example" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			for _, allow := range []bool{false, true} {
				err := ValidateURL(context.Background(), tt.url, allow, dns.resolver())
				var e *endcall.Error
				if !errors.As(err, &e) || e.Code != endcall.EINVALID {
					t.Fatalf("ValidateURL(%q, allowPrivate=%v): got %v, want an *endcall.Error with code %q", tt.url, allow, err, endcall.EINVALID)
				}
				if !strings.Contains(e.Message, tt.wantText) {
					t.Errorf("ValidateURL(%q, allowPrivate=%v): got message %q, want it to contain %q", tt.url, allow, e.Message, tt.wantText)
				}
			}
		})
	}
}

func TestValidateURLDNSFailure(t *testing.T) {
	t.Parallel()
	err := ValidateURL(context.Background(), "https://anything.example/hook", false, failingResolver())
	if got, want := endcall.ErrorCode(err), endcall.EINVALID; got != want {
		t.Fatalf("got code %q (err %v), want %q", got, err, want)
	}
	if msg, want := endcall.ErrorMessage(err), "could not be resolved"; !strings.Contains(msg, want) {
		t.Errorf("got message %q, want it to contain %q", msg, want)
	}
	if strings.Contains(endcall.ErrorMessage(err), "no network in this test") {
		t.Errorf("message %q leaks the resolver's error", endcall.ErrorMessage(err))
	}
}
