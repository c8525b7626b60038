package gate

import (
	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
)

// expiresOf is when t expires, in unix nanoseconds; 0: never. The gate
// refuses it from that instant on, as store.Token.ExpiredAt does.
func expiresOf(t *store.Token) int64 {
	if t.ExpiresAt.IsZero() {
		return 0
	}
	return t.ExpiresAt.UnixNano()
}

// oldSecretOf is t's previous secret after a rotation, and when it stops
// working (unix nanoseconds; refused from that instant on, as
// store.Token.OldValidAt says). The store keeps it until its sweep ends the
// grace window; meanwhile the gate answers rotated_token for it.
func oldSecretOf(t *store.Token) (secret.Digest, int64, bool) {
	if t.OldDigest == (secret.Digest{}) {
		return secret.Digest{}, 0, false
	}
	return t.OldDigest, t.OldValidUntil.UnixNano(), true
}

// allowedOf is t's allow-list: addresses and CIDRs; empty: any address.
func allowedOf(t *store.Token) []string { return t.Allowed }
