// Package webhook holds the outbound side of Standard Webhooks
// (https://www.standardwebhooks.com) for endcall: secret generation and
// signing (Sign), the SSRF guard applied when an endpoint is registered
// (ValidateURL) and again on every connection (NewHTTPClient), one delivery
// attempt (Send), and the retry schedule (ParseSchedule, Jitter).
//
// It is a pure adapter: it knows nothing of Postgres, Redis or asynq. The
// webhook:deliver task in package jobs combines these pieces:
//
//	sig, err := webhook.Sign(secrets, deliveryID, now, body)
//	a := webhook.Send(ctx, client, endpointURL, deliveryID, now, body, sig)
//	if !a.OK() { /* schedule the next attempt: Jitter(schedule[n]), at least a.RetryAfter */ }
//
// The client from NewHTTPClient never follows redirects, never uses a proxy,
// and, unless private networks are allowed, refuses at connect time any IP
// address that ValidateURL would refuse, so a host that re-resolves to an
// internal address after registration (DNS rebinding) is still blocked.
package webhook
