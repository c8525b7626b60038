// Package store holds the domain of apptokens: its types, data rules,
// operations and change feed, written once over an Engine (engine.go).
//
// Every data rule (name, description, access, uniqueness) is enforced here, inside
// the write transaction, so the CLI, the TUI, SSH and the gate cannot bypass one.
package store

import (
	"strings"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
)

// Access is an access type a token grants.
type Access string

// The access types of the portal.
const (
	AccessSecurityDirector Access = "security-director"
	AccessThirdPartyFeeds  Access = "third-party-feeds"
)

// AllAccess lists the access types in display order, in a slice of its own.
func AllAccess() []Access {
	all := accessOrder()
	return all[:]
}

// accessOrder is the display order as an array value: no allocation, and no
// package-level variable anyone could change.
func accessOrder() [2]Access {
	return [...]Access{AccessSecurityDirector, AccessThirdPartyFeeds}
}

// Label is the portal's wording of the access type.
func (a Access) Label() string {
	switch a {
	case AccessSecurityDirector:
		return "Security Director"
	case AccessThirdPartyFeeds:
		return "Third Party Feeds"
	}
	return string(a)
}

// State is a token's effective state.
type State string

// Token states as they appear in `list --json`.
const (
	StateActive   State = "active"
	StateInactive State = "inactive"
	// StateExpired: past its ExpiresAt (whatever else holds).
	StateExpired State = "expired"
)

// Label is the state as shown on screen.
func (s State) Label() string {
	switch s {
	case StateActive:
		return "Active"
	case StateExpired:
		return "Expired"
	}
	return "Inactive"
}

// Token is an application token as stored: never its secret, only the digest.
type Token struct {
	ID          string        `json:"id"`
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Access      []Access      `json:"access"`
	Active      bool          `json:"active"`
	Digest      secret.Digest `json:"digest"`
	Hint        string        `json:"hint"`
	CreatedAt   time.Time     `json:"created_at"`
	UpdatedAt   time.Time     `json:"updated_at"`
	// ActivatedAt is when an admin last activated the token; the inactivity
	// clock starts again from it, so a re-activated token is not instantly stale.
	ActivatedAt time.Time `json:"activated_at"`
	LastUsedAt  time.Time `json:"last_used_at"`
	// ExpiresAt is when the token stops working for good (zero: never);
	// edit can move it.
	ExpiresAt time.Time `json:"expires_at"`
	// OldDigest and OldHint are the previous secret's during a rotation's
	// grace window, which ends at OldValidUntil (all zero: no old secret).
	// The sweep clears them once the window has ended; until then a lookup
	// must still compare OldValidUntil with the time (OldValidAt).
	OldDigest     secret.Digest `json:"old_digest"`
	OldHint       string        `json:"old_hint"`
	OldValidUntil time.Time     `json:"old_valid_until"`
	// RotatedAt is when the secret was last rotated (zero: never).
	RotatedAt time.Time `json:"rotated_at"`
	// Allowed is the token's network allow-list: canonical addresses and
	// CIDRs (cidr.Canonical), sorted as strings; empty allows any address.
	Allowed []string `json:"allowed"`
}

// OldValidAt reports whether the previous secret (OldDigest) still works at now.
func (t Token) OldValidAt(now time.Time) bool {
	return t.OldDigest != (secret.Digest{}) && now.Before(t.OldValidUntil)
}

// HasAccess reports whether the token grants a.
func (t Token) HasAccess(a Access) bool {
	for _, x := range t.Access {
		if x == a {
			return true
		}
	}
	return false
}

// AccessLabels is the access types in the portal's words, comma-separated.
func (t Token) AccessLabels() string {
	parts := make([]string, 0, len(t.Access))
	for _, a := range t.Access {
		parts = append(parts, a.Label())
	}
	return strings.Join(parts, ", ")
}

// AccessNames is the access types as contract names, comma-separated.
func (t Token) AccessNames() string {
	parts := make([]string, 0, len(t.Access))
	for _, a := range t.Access {
		parts = append(parts, string(a))
	}
	return strings.Join(parts, ",")
}

// Usage is what one IP address did with one token.
type Usage struct {
	TokenID     string    `json:"token_id"`
	IP          string    `json:"ip"`
	FirstUsedAt time.Time `json:"first_used_at"`
	LastUsedAt  time.Time `json:"last_used_at"`
	Allowed     uint64    `json:"allowed"`
	Denied      uint64    `json:"denied"`
	Blocked     bool      `json:"blocked"`
}

// UsageDelta is a batch of requests from one IP with one token, as aggregated by the gate.
type UsageDelta struct {
	TokenID     string
	IP          string
	FirstUsedAt time.Time
	LastUsedAt  time.Time
	Allowed     uint64
	Denied      uint64
}

// Event is one audit record. It never holds a secret.
type Event struct {
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Token   string    `json:"token"`
	Details string    `json:"details"`
}

// Audit actions.
const (
	ActionCreate     = "create"
	ActionEdit       = "edit"
	ActionActivate   = "activate"
	ActionDeactivate = "deactivate"
	ActionExpire     = "expire"
	ActionDelete     = "delete"
	ActionBlock      = "block"
	ActionUnblock    = "unblock"
	ActionRestore    = "restore"
	// Lifecycle (issue 11).
	ActionExpired         = "expired"      // the sweep saw ExpiresAt pass
	ActionAutoDelete      = "auto-delete"  // the sweep deleted an unused token
	ActionRotate          = "rotate"       // a new secret; details grace=…
	ActionRotationEnd     = "rotation-end" // the old secret's grace window ended
	ActionAllow           = "allow"
	ActionDisallow        = "disallow"
	ActionRevokedByReport = "revoked_by_report" // POST /revoke; details ip=…
)

// SweepUser is the actor of what the store does on its own (auto-delete,
// rotation-end, expired): Actor{User: SweepUser}.
const SweepUser = "apptokens"

// Actor is who makes a change, for the audit trail.
type Actor struct {
	// User is the local OS user or the SSH user name.
	User string
	// Fingerprint is the SSH key fingerprint in OpenSSH's SHA256:… form, if any.
	Fingerprint string
}

// String is the actor as recorded in audit events, with control characters escaped.
func (a Actor) String() string {
	u := Printable(a.User)
	if u == "" {
		u = "unknown"
	}
	if a.Fingerprint == "" {
		return u
	}
	return u + " (" + a.Fingerprint + ")"
}

// NewToken is the input of Create.
type NewToken struct {
	Name        string
	Description string
	Access      []Access
	// ExpiresAt is when the token stops working (zero: never); it must be
	// in the future (ParseExpires reads what users type).
	ExpiresAt time.Time
}

// Edit is the input of Store.Edit: nil fields are left as they are.
type Edit struct {
	Description *string
	Access      []Access
	// ExpiresAt, when not nil, is the new expiry: a future time, or the zero
	// time for never. A new date revives an expired token.
	ExpiresAt *time.Time
}

// Created is the result of Create: the stored token and its secret, which exists
// nowhere else and must be shown once and dropped.
type Created struct {
	Token  Token
	Secret secret.Token
}
