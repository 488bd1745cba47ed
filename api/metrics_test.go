package api_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/endcall/endcall/api"
	"github.com/endcall/endcall/metrics"
)

// Requests to paths no route matches, with made-up methods, add a bounded
// number of series: the path and the method are not label values.
func TestMetricsLabelsBounded(t *testing.T) {
	m := metrics.New(nil)
	b := setup(t, func(o *options) { o.deps = func(d *api.Deps) { d.Observe = m.ObserveRequest } })
	ms := httptest.NewServer(m.Handler())
	t.Cleanup(ms.Close)
	series := func() int {
		res, err := http.Get(ms.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		n := 0
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "endcall_http_") {
				n++
			}
		}
		return n
	}
	b.do("GET", "/v1/nothing-here", "", nil)
	before := series()
	methods := []string{"GET", "POST", "PUT", "DELETE"}
	for i := range 1000 {
		method := methods[i%len(methods)]
		if i%2 == 0 {
			method = fmt.Sprintf("M%d", rand.IntN(1_000_000))
		}
		req, err := http.NewRequest(method, fmt.Sprintf("%s/x%d/%d", b.url, i, rand.Int()), nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	// Each new (method, status) pair adds a counter and a histogram of 16 lines.
	if added := series() - before; added > 100 {
		t.Fatalf("1,000 requests to unknown paths added %d metric lines", added)
	}
}
