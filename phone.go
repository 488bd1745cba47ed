package endcall

import "time"

// PhoneNumber is a workspace's number. BYOT numbers carry their own Twilio
// account; the auth token never leaves the store except to sign requests.
type PhoneNumber struct {
	ID               string    `json:"id"`
	WorkspaceID      string    `json:"workspace_id"`
	Number           string    `json:"number"`
	Provider         string    `json:"provider"`
	TwilioAccountSID *string   `json:"twilio_account_sid"`
	BYOT             bool      `json:"byot"`
	CreatedAt        time.Time `json:"created_at"`
}

// ProviderCredentials are the Twilio account a request is made with.
type ProviderCredentials struct {
	AccountSID string
	AuthToken  string
}

// String masks the token so that credentials can never be logged by accident.
func (c ProviderCredentials) String() string {
	return "ProviderCredentials{" + c.AccountSID + ", ****}"
}
