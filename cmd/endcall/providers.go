package main

import (
	"context"
	"log/slog"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/api"
	"github.com/endcall/endcall/config"
)

// jwtConfig builds the API's bearer-JWT settings: HS256 with JWT_SECRET,
// RS256/ES256 against JWT_JWKS_URL, whose key set is refreshed until ctx ends.
func jwtConfig(ctx context.Context, cfg config.Config, log *slog.Logger) (api.JWTConfig, error) {
	jc := api.JWTConfig{Secret: secretBytes(cfg.JWTSecret), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience}
	if cfg.JWTJWKSURL != "" {
		kf, err := api.NewJWKS(ctx, cfg.JWTJWKSURL, api.JWKSOptions{Log: log})
		if err != nil {
			return jc, err
		}
		jc.Keyfunc = kf
	}
	return jc, nil
}

// twilioConfig builds what make-call and the status callback need; tel
// places the calls, through the same client that hangs them up.
func twilioConfig(cfg config.Config, tel endcall.Telephony) api.TwilioConfig {
	dialer, _ := tel.(api.Dialer)
	numbers, _ := tel.(api.NumberLookup)
	return api.TwilioConfig{
		Dialer: dialer, Simulated: cfg.TelephonyMode == config.TelephonySimulated, Numbers: numbers,
		VoiceURL: cfg.TwilioVoiceURL, PublicBaseURL: cfg.PublicBaseURL,
		AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken,
		MaxCallDuration: cfg.MaxCallDuration,
	}
}
