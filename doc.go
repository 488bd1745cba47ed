// Package endcall holds the domain of the endcall service: calls, phone
// numbers, webhook endpoints and deliveries, the errors every layer speaks,
// and the interfaces that the adapters (postgres, twilio, api, jobs)
// implement or consume. It imports none of those adapters.
package endcall
