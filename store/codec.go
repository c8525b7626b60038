package store

import (
	"encoding/binary"
	"errors"
	"time"
)

// Tokens are stored in a compact binary form: listing 100k tokens is decode-bound,
// and JSON costs several times more. Usage and audit records stay JSON.
//
//	version(1) id name description hint (uvarint length + bytes each)
//	access bits(1) active(1) digest(32) created updated activated lastUsed (varint unix nanos, 0 = never)
//
// Version 2 (issue 11: lifecycle) appends, after v1's fields:
//
//	expires oldValidUntil rotatedAt (varint unix nanos, 0 = none)
//	oldHint (uvarint length + bytes) oldDigest(32)
//
// Version 1 records still decode (those fields zero). The allow-list is not
// in the record: it has keys of its own (a/<id>/<cidr>), read with it.
const (
	tokenCodecV1 = 1
	tokenCodecV2 = 2
)

var errBadToken = errors.New("stored token record is corrupt")

func encodeToken(t *Token) []byte { return encodeTokenVersion(t, tokenCodecV2) }

// encodeTokenVersion encodes t in the codec version given: version 1 has no
// lifecycle fields (a v1 record decoded and encoded again at v1 is the same
// bytes, which is how a backup of the previous release is checked).
func encodeTokenVersion(t *Token, version byte) []byte {
	b := make([]byte, 0, 64+len(t.ID)+len(t.Name)+len(t.Description)+len(t.Hint))
	b = append(b, version)
	for _, s := range [...]string{t.ID, t.Name, t.Description, t.Hint} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	var bits byte
	for _, a := range t.Access {
		for i, x := range accessOrder() {
			if a == x {
				bits |= 1 << i
			}
		}
	}
	b = append(b, bits)
	if t.Active {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = append(b, t.Digest[:]...)
	for _, tm := range [...]time.Time{t.CreatedAt, t.UpdatedAt, t.ActivatedAt, t.LastUsedAt} {
		var n int64
		if !tm.IsZero() {
			n = tm.UnixNano()
		}
		b = binary.AppendVarint(b, n)
	}
	if version == tokenCodecV1 {
		return b
	}
	for _, tm := range [...]time.Time{t.ExpiresAt, t.OldValidUntil, t.RotatedAt} {
		b = binary.AppendVarint(b, unixNanos(tm))
	}
	b = binary.AppendUvarint(b, uint64(len(t.OldHint)))
	b = append(b, t.OldHint...)
	return append(b, t.OldDigest[:]...)
}

func unixNanos(tm time.Time) int64 {
	if tm.IsZero() {
		return 0
	}
	return tm.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func decodeToken(b []byte, t *Token) error {
	if len(b) == 0 || b[0] != tokenCodecV1 && b[0] != tokenCodecV2 {
		return errBadToken
	}
	version := b[0]
	b = b[1:]
	var strs [4]string
	for i := range strs {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return errBadToken
		}
		strs[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	t.ID, t.Name, t.Description, t.Hint = strs[0], strs[1], strs[2], strs[3]
	if len(b) < 2+len(t.Digest) {
		return errBadToken
	}
	bits := b[0]
	t.Access = make([]Access, 0, 2)
	for i, x := range accessOrder() {
		if bits&(1<<i) != 0 {
			t.Access = append(t.Access, x)
		}
	}
	t.Active = b[1] == 1
	copy(t.Digest[:], b[2:2+len(t.Digest)])
	b = b[2+len(t.Digest):]
	for _, dst := range [...]*time.Time{&t.CreatedAt, &t.UpdatedAt, &t.ActivatedAt, &t.LastUsedAt} {
		n, k := binary.Varint(b)
		if k <= 0 {
			return errBadToken
		}
		b = b[k:]
		if n == 0 {
			*dst = time.Time{}
		} else {
			*dst = time.Unix(0, n).UTC()
		}
	}
	t.ExpiresAt, t.OldValidUntil, t.RotatedAt, t.OldHint, t.OldDigest = time.Time{}, time.Time{}, time.Time{}, "", [32]byte{}
	t.Allowed = nil
	if version == tokenCodecV1 {
		return nil
	}
	for _, dst := range [...]*time.Time{&t.ExpiresAt, &t.OldValidUntil, &t.RotatedAt} {
		n, k := binary.Varint(b)
		if k <= 0 {
			return errBadToken
		}
		b = b[k:]
		*dst = fromNanos(n)
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return errBadToken
	}
	t.OldHint = string(b[k : k+int(n)])
	b = b[k+int(n):]
	if len(b) != len(t.OldDigest) {
		return errBadToken
	}
	copy(t.OldDigest[:], b)
	return nil
}

// getToken reads the token with this ID, its last use merged in from its own
// keys (mergeLastUse); an error matching ErrNoKey when there is none.
func (s *Store) getToken(txn Reader, id string, t *Token) error {
	b, err := txn.Get(tokenKey(id))
	if err != nil {
		return err
	}
	if err := decodeToken(b, t); err != nil {
		return err
	}
	if err := mergeAllowed(txn, t); err != nil {
		return err
	}
	return s.mergeLastUse(txn, t)
}

// getTokenBare is getToken without the allow-list (t.Allowed nil): for the
// gate's usage flush, which needs no rules and must not pay a scan (on etcd,
// a round trip) per token.
func (s *Store) getTokenBare(txn Reader, id string, t *Token) error {
	b, err := txn.Get(tokenKey(id))
	if err != nil {
		return err
	}
	if err := decodeToken(b, t); err != nil {
		return err
	}
	return s.mergeLastUse(txn, t)
}

func putToken(txn Writer, t *Token) error {
	return txn.Set(tokenKey(t.ID), encodeToken(t))
}
