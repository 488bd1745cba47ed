package webhook

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// fakeDNS is a tiny authoritative DNS server on 127.0.0.1 UDP that answers
// A and AAAA questions from a fixed table and NXDOMAIN for everything else.
// It speaks just enough of RFC 1035 for Go's resolver.
type fakeDNS struct {
	conn    net.PacketConn
	records map[string][]netip.Addr // lower-case name without the final dot

	mu      sync.Mutex
	queries []string
}

func startFakeDNS(t *testing.T, records map[string][]netip.Addr) *fakeDNS {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen udp: %v", err)
	}
	s := &fakeDNS{conn: conn, records: records}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, addr, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := s.answer(buf[:n]); resp != nil {
				_, _ = conn.WriteTo(resp, addr)
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

// resolver returns a pure-Go resolver that sends every query to s.
func (s *fakeDNS) resolver() *net.Resolver {
	addr := s.conn.LocalAddr().String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", addr)
		},
	}
}

func (s *fakeDNS) asked(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.queries {
		if q == name {
			return true
		}
	}
	return false
}

func (s *fakeDNS) answer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil
	}
	// Question: labels, then type and class.
	i := 12
	var labels []string
	for {
		if i >= len(q) {
			return nil
		}
		l := int(q[i])
		i++
		if l == 0 {
			break
		}
		if l > 63 || i+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i:i+l]))
		i += l
	}
	if i+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i : i+2])
	question := q[12 : i+4]
	name := strings.ToLower(strings.Join(labels, "."))
	s.mu.Lock()
	s.queries = append(s.queries, name)
	s.mu.Unlock()

	addrs, known := s.records[name]
	var answers []netip.Addr
	for _, a := range addrs {
		if (qtype == 1 && a.Is4()) || (qtype == 28 && a.Is6()) {
			answers = append(answers, a)
		}
	}
	resp := make([]byte, 12, 512)
	copy(resp[0:2], q[0:2])                                        // id
	flags := uint16(0x8000 | 0x0400 | uint16(q[2]&0x01)<<8 | 0x80) // QR, AA, RD copied, RA
	if !known {
		flags |= 3 // NXDOMAIN
	}
	binary.BigEndian.PutUint16(resp[2:4], flags)
	binary.BigEndian.PutUint16(resp[4:6], 1)
	binary.BigEndian.PutUint16(resp[6:8], uint16(len(answers)))
	resp = append(resp, question...)
	for _, a := range answers {
		resp = append(resp, 0xc0, 12) // pointer to the question's name
		resp = binary.BigEndian.AppendUint16(resp, qtype)
		resp = binary.BigEndian.AppendUint16(resp, 1) // IN
		resp = binary.BigEndian.AppendUint32(resp, 60)
		raw := a.AsSlice()
		resp = binary.BigEndian.AppendUint16(resp, uint16(len(raw)))
		resp = append(resp, raw...)
	}
	return resp
}

// failingResolver fails every DNS query at once, without any network.
func failingResolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("no network in this test")
		},
	}
}
