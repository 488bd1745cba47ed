package twilio

import twclient "github.com/twilio/twilio-go/client"

// ValidateSignature reports whether signature is the X-Twilio-Signature that
// Twilio computes with authToken for a request to url carrying the form
// params. An empty token or signature never validates.
func ValidateSignature(authToken, url string, params map[string]string, signature string) bool {
	if authToken == "" || signature == "" {
		return false
	}
	v := twclient.NewRequestValidator(authToken)
	return v.Validate(url, params, signature)
}
