// Package twilio is endcall's adapter to Twilio's REST API, built on the
// official github.com/twilio/twilio-go library.
//
// Client hangs calls up (endcall.Telephony) and places outbound calls, with
// the platform's credentials or a phone number's own (BYOT) ones. Every
// request is bounded by Config.Timeout and by the caller's context, and goes
// to Config.BaseURL, so a fake such as package twiliotest can stand in for
// api.twilio.com. Twilio's answers are translated into domain errors: a call
// that is already over is endcall.HangupAlreadyEnded, refusals that retrying
// cannot fix are permanent *endcall.HangupError values, and CreateCall
// returns *endcall.Error values that are safe to show to API clients.
//
// ValidateSignature checks the X-Twilio-Signature of status callbacks, and
// Simulated is the Telephony of TELEPHONY_MODE=simulated, which makes no
// requests at all.
//
// Auth tokens never appear in errors or logs.
package twilio
