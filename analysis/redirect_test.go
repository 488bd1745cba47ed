package analysis

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/endcall/endcall/analysis/llmtest"
)

// A redirect from the LLM's base URL is not followed: the API key goes to
// the configured host only.
func TestLLMFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	f := llmtest.New(t, llmtest.OK(goodAnswer))
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, f.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	l := newLLM(f)
	l.BaseURL = redirector.URL
	if _, _, err := l.Analyze(context.Background(), negativeCall, nil); err == nil {
		t.Error("Analyze succeeded through a redirect")
	}
	if got := len(f.Requests()); got != 0 {
		t.Errorf("the redirect was followed: the model got %d requests", got)
	}
}
