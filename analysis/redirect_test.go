package analysis

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A redirect from the LLM's base URL is not followed: the API key goes to
// the configured host only.
func TestLLMFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	f, l := newFakeLLM(t, ok(goodAnswer))
	target := l.BaseURL
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target+"chat/completions", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	l.BaseURL = redirector.URL + "/v1/"
	if _, _, err := l.Analyze(context.Background(), negativeCall); err == nil {
		t.Error("Analyze succeeded through a redirect")
	}
	if got := f.requests.Load(); got != 0 {
		t.Errorf("the redirect was followed: the model got %d requests", got)
	}
}
