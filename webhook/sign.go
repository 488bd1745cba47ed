package webhook

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every endpoint secret, as Standard Webhooks specifies.
const SecretPrefix = "whsec_"

// secretBytes is the size of the random key inside a new secret.
const secretBytes = 32

// NewSecret returns a fresh endpoint secret: "whsec_" and the base64 of 32
// random bytes. It is shown to the user once, at creation or rotation.
func NewSecret() (string, error) {
	var key [secretBytes]byte
	if _, err := rand.Read(key[:]); err != nil {
		return "", fmt.Errorf("webhook: generating secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key[:]), nil
}

// Scratch layout of Sign: one heap buffer serves every secret.
const (
	encMax   = 88                        // base64 of a key of up to one SHA-256 block
	keyOff   = 0                         // decoded key, zero-padded to one block
	keyLen   = 96                        // base64 DecodedLen(encMax) rounded up
	padOff   = keyOff + keyLen           // ipad / opad block
	encOff   = padOff + sha256.BlockSize // the secret's base64, copied for decoding
	sumOff   = encOff + encMax           // inner digest
	chunkOff = sumOff + sha256.Size      // id / timestamp bytes on their way into the hash
	chunkLen = 64
	scratchN = chunkOff + chunkLen
	sigLen   = 3 + 44 // "v1," + base64 of a SHA-256 MAC
)

// Sign returns the webhook-signature header value for one message: for each
// secret, "v1," and the base64 HMAC-SHA256 of "{msgID}.{unix ts}.{body}",
// space-separated. Several secrets are live for a while after a rotation,
// so that receivers holding either one can verify. It computes the HMAC with
// a single reused digest and never copies body, because every delivery
// attempt calls it.
func Sign(secrets []string, msgID string, ts time.Time, body []byte) (string, error) {
	if len(secrets) == 0 {
		return "", errors.New("webhook: sign: no secrets")
	}
	scratch := make([]byte, scratchN)
	h := sha256.New()
	var out strings.Builder
	out.Grow(len(secrets)*(sigLen+1) - 1)
	for i, secret := range secrets {
		key, err := decodeKey(scratch, secret)
		if err != nil {
			return "", fmt.Errorf("webhook: sign: secret %d: %w", i+1, err)
		}
		// HMAC (RFC 2104): H((K ^ opad) || H((K ^ ipad) || message)).
		pad := scratch[padOff : padOff+sha256.BlockSize]
		for j := range pad {
			pad[j] = key[j] ^ 0x36
		}
		h.Reset()
		h.Write(pad)
		writeString(h, scratch, msgID)
		chunk := scratch[chunkOff:chunkOff]
		chunk = append(chunk, '.')
		chunk = strconv.AppendInt(chunk, ts.Unix(), 10)
		chunk = append(chunk, '.')
		h.Write(chunk)
		h.Write(body)
		inner := h.Sum(scratch[sumOff:sumOff])
		for j := range pad {
			pad[j] = key[j] ^ 0x5c
		}
		h.Reset()
		h.Write(pad)
		h.Write(inner)
		mac := h.Sum(scratch[chunkOff:chunkOff])
		enc := base64.StdEncoding.AppendEncode(scratch[encOff:encOff], mac)
		if i > 0 {
			out.WriteByte(' ')
		}
		out.WriteString("v1,")
		out.Write(enc)
	}
	return out.String(), nil
}

// decodeKey decodes secret into the key block of scratch (zero-padded to the
// SHA-256 block size, or replaced by its digest when longer, as HMAC does).
func decodeKey(scratch []byte, secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, errors.New(`secret does not start with "whsec_"`)
	}
	key := scratch[keyOff : keyOff+keyLen]
	clear(key)
	var raw []byte
	if len(enc) <= encMax {
		n := copy(scratch[encOff:encOff+encMax], enc)
		m, err := base64.StdEncoding.Decode(key, scratch[encOff:encOff+n])
		if err != nil {
			return nil, errors.New("secret is not valid base64")
		}
		raw = key[:m]
	} else {
		long, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return nil, errors.New("secret is not valid base64")
		}
		raw = long
	}
	if len(raw) == 0 {
		return nil, errors.New("secret has an empty key")
	}
	if len(raw) > sha256.BlockSize {
		sum := sha256.Sum256(raw)
		clear(key)
		copy(key, sum[:])
	}
	return key[:sha256.BlockSize], nil
}

// writeString feeds s to h through scratch's chunk area, so that no
// []byte(s) conversion allocates.
func writeString(h interface{ Write([]byte) (int, error) }, scratch []byte, s string) {
	for len(s) > 0 {
		n := copy(scratch[chunkOff:chunkOff+chunkLen], s)
		h.Write(scratch[chunkOff : chunkOff+n])
		s = s[n:]
	}
}
