package api

import (
	"net/http"
	"regexp"

	"github.com/gorilla/mux"

	"github.com/endcall/endcall"
)

var twilioAccountSID = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)

func (s *Server) handleCreatePhoneNumber(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	number, provider, creds, err := decodePhoneNumber(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The account the number will be used with must hold it; the lookup
	// runs before the store is touched, so no connection waits on Twilio.
	if s.twilio.Numbers != nil {
		if err := s.twilio.Numbers.LookupNumber(r.Context(), creds, number); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	p, err := s.store.CreatePhoneNumber(r.Context(), workspaceFrom(r.Context()), number, provider, creds)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusCreated, "Phone number created", p)
}

func decodePhoneNumber(body []byte) (number, provider string, creds *endcall.ProviderCredentials, err error) {
	o, err := parseObject(body)
	if err != nil {
		return "", "", nil, err
	}
	n, err := o.str("number")
	if err != nil {
		return "", "", nil, err
	} else if n == nil || !e164.MatchString(*n) {
		return "", "", nil, invalid("number is required in E.164 form, such as +15551234567.")
	}
	p, err := o.str("provider")
	if err != nil {
		return "", "", nil, err
	} else if p == nil || *p != "twilio" {
		return "", "", nil, invalid(`provider is required and must be "twilio".`)
	}
	sid, err := o.str("twilio_account_sid")
	if err != nil {
		return "", "", nil, err
	}
	token, err := o.str("twilio_auth_token")
	if err != nil {
		return "", "", nil, err
	}
	switch {
	case sid == nil && token == nil:
	case sid == nil || token == nil:
		return "", "", nil, invalid("twilio_account_sid and twilio_auth_token must be given together.")
	case !twilioAccountSID.MatchString(*sid):
		return "", "", nil, invalid("twilio_account_sid must be AC followed by 32 hex digits.")
	case len(*token) < 16 || len(*token) > 128:
		return "", "", nil, invalid("twilio_auth_token must be between 16 and 128 characters.")
	default:
		creds = &endcall.ProviderCredentials{AccountSID: *sid, AuthToken: *token}
	}
	return *n, *p, creds, nil
}

func (s *Server) handleListPhoneNumbers(w http.ResponseWriter, r *http.Request) {
	list, err := s.store.ListPhoneNumbers(r.Context(), workspaceFrom(r.Context()))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusOK, "Phone numbers retrieved", list)
}

func (s *Server) handleDeletePhoneNumber(w http.ResponseWriter, r *http.Request) {
	id, ok := parseUUID(mux.Vars(r)["id"])
	if !ok {
		s.fail(w, r, endcall.Errorf(endcall.ENOTFOUND, "phone number not found"))
		return
	}
	if err := s.store.DeletePhoneNumber(r.Context(), workspaceFrom(r.Context()), id); err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusOK, "Phone number deleted", map[string]string{"id": id})
}
