// Package api is endcall's HTTP interface: routes, authentication, request
// decoding and the success and error envelopes.
package api
