package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/endcall/endcall"
)

// Body limits: 64 KiB, and 1 MiB for a call's PATCH (its transcript).
const (
	maxBody      = 64 << 10
	maxPatchBody = 1 << 20
)

// readBody reads a JSON request body of at most limit bytes. An absent
// Content-Type is accepted; any other than JSON is refused.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, endcall.Errorf(endcall.EMEDIATYPE, "Content-Type must be application/json.")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, endcall.Errorf(endcall.ETOOLARGE, "Request body is larger than %d KiB.", limit>>10)
	} else if err != nil {
		return nil, endcall.Errorf(endcall.EINVALID, "Could not read the request body.")
	}
	return body, nil
}

// object is a decoded JSON request object whose fields are read one by one,
// so that every type error names its field. Unknown fields are ignored.
type object map[string]json.RawMessage

// parseObject decodes body, which must be exactly one JSON object.
func parseObject(body []byte) (object, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, invalid("Request body must be a JSON object.")
	}
	var o object
	if err := json.Unmarshal(trimmed, &o); err != nil {
		var syntaxErr *json.SyntaxError
		if errors.As(err, &syntaxErr) {
			return nil, invalid("Malformed JSON at byte %d.", syntaxErr.Offset)
		}
		return nil, invalid("Malformed JSON.")
	}
	return o, nil
}

// field decodes the named field into v. It reports whether the field was
// present and not null.
func (o object) field(name, want string, v any) (bool, error) {
	raw, ok := o[name]
	if !ok || string(raw) == "null" {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, invalid("%s must be %s.", name, want)
	}
	// Postgres text and jsonb cannot hold NUL: refused here, it cannot fail
	// a write (or, on the end path, the batch of ends the write shares).
	if hasNUL(raw) {
		return false, invalid("%s must not contain NUL characters (\\u0000).", name)
	}
	return true, nil
}

// hasNUL reports whether valid JSON text holds a NUL character, which it
// can only as the escape \u0000 inside a string.
func hasNUL(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' || i+1 >= len(raw) {
			continue
		}
		if raw[i+1] == 'u' && i+6 <= len(raw) && string(raw[i+2:i+6]) == "0000" {
			return true
		}
		i++ // the escaped character, which may be a backslash
	}
	return false
}

// storable reports whether Postgres text can hold s: valid UTF-8 without
// NUL. Query parameters and form values are raw bytes, unlike JSON strings,
// which Go's decoder makes valid UTF-8.
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// has reports whether the field was present at all, null included.
func (o object) has(name string) bool {
	_, ok := o[name]
	return ok
}

// str returns a string field, nil when absent or null.
func (o object) str(name string) (*string, error) {
	var s string
	if ok, err := o.field(name, "a string", &s); !ok || err != nil {
		return nil, err
	}
	return &s, nil
}

// integer returns an integer field, nil when absent or null.
func (o object) integer(name string) (*int, error) {
	var n int
	if ok, err := o.field(name, "an integer", &n); !ok || err != nil {
		return nil, err
	}
	return &n, nil
}

// jsonObject returns a field that must be a JSON object, nil when absent or
// null, made fit for jsonb (see forJSONB).
func (o object) jsonObject(name string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if ok, err := o.field(name, "an object", &m); !ok || err != nil {
		return nil, err
	}
	v, ok := forJSONB(o[name])
	if !ok {
		return nil, invalid("%s holds a number too large or too small to store.", name)
	}
	return v, nil
}

// forJSONB re-encodes valid JSON text so that Postgres jsonb accepts it:
// Go's decoder turns invalid UTF-8 and unpaired surrogate escapes, which
// jsonb refuses, into U+FFFD. It reports false for a number outside the
// range of a float64, which jsonb's numeric may not hold (1e1000000).
func forJSONB(raw []byte) (json.RawMessage, bool) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil || !numbersFit(v) {
		return nil, false
	}
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, false
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), true
}

// numbersFit reports whether every number in a decoded value is zero or
// within the range of a float64.
func numbersFit(v any) bool {
	switch v := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return false
		}
		// ParseFloat rounds an underflow to zero without an error.
		mantissa, _, _ := strings.Cut(strings.ToLower(string(v)), "e")
		return f != 0 || strings.Trim(mantissa, "-0.") == ""
	case map[string]any:
		for _, x := range v {
			if !numbersFit(x) {
				return false
			}
		}
	case []any:
		for _, x := range v {
			if !numbersFit(x) {
				return false
			}
		}
	}
	return true
}

// optionalString reads a PATCH field: Set when present, Value nil when null.
func (o object) optionalString(name string, max int) (endcall.Optional[string], error) {
	v, err := o.str(name)
	if err != nil {
		return endcall.Optional[string]{}, err
	}
	if v != nil && len([]rune(*v)) > max {
		return endcall.Optional[string]{}, invalid("%s must be at most %d characters.", name, max)
	}
	return endcall.Optional[string]{Set: o.has(name), Value: v}, nil
}

// parseUUID reads a UUID in its canonical 36-character form.
func parseUUID(s string) (string, bool) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", false
	}
	return u.String(), true
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

func invalid(format string, args ...any) error {
	return endcall.Errorf(endcall.EINVALID, format, args...)
}
