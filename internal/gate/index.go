package gate

import (
	"maps"
	"net/netip"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
)

// accessSet is a token's access types as bits, so that a check is one AND.
type accessSet uint8

const (
	accessSecurityDirector accessSet = 1 << iota
	accessThirdPartyFeeds
)

// accessBits maps a contract access name to its bit; "" (any access) is 0.
func accessBits(a store.Access) accessSet {
	switch a {
	case store.AccessSecurityDirector:
		return accessSecurityDirector
	case store.AccessThirdPartyFeeds:
		return accessThirdPartyFeeds
	}
	return 0
}

// accessHeader is the X-Token-Access value of every set, in store.AllAccess order
// (the order of Token.AccessNames).
var accessHeader = [...]string{
	0:                      "",
	accessSecurityDirector: string(store.AccessSecurityDirector),
	accessThirdPartyFeeds:  string(store.AccessThirdPartyFeeds),
	accessSecurityDirector | accessThirdPartyFeeds: string(store.AccessSecurityDirector) + "," + string(store.AccessThirdPartyFeeds),
}

const (
	flagLive    uint8 = 1 << iota // a token; an entry of index.recent without it records a deletion
	flagActive                    // an admin has not deactivated it
	flagBlocked                   // at least one IP is blocked for it: consult index.blocked
)

// entry is one token as the verifier needs it, stored in the map by digest so
// that a verification costs one map probe. It holds no pointer (the name and ID
// live in index.text), so the garbage collector never scans the index.
type entry struct {
	since   int64  // unix nanoseconds the inactivity clock started (store.Token's since)
	slot    uint32 // the token's small number in this gate: blocked IPs and usage use it
	textOff uint32 // name, then ID, in index.text
	idLen   uint16
	nameLen uint8
	access  accessSet
	flags   uint8
}

// blockKey is one blocked (token, IP) pair; the IP is in the 16-byte form of
// the unmapped address, so IPv4 and IPv4-mapped IPv6 agree.
type blockKey struct {
	slot uint32
	ip   [16]byte
}

func blockKeyOf(slot uint32, ip netip.Addr) blockKey {
	return blockKey{slot: slot, ip: ip.Unmap().As16()}
}

// index is an immutable snapshot of every token, read without locks through an
// atomic.Pointer. A change builds a new index and swaps it in. To keep changes
// cheap with 100k tokens, the big map (base) is shared between snapshots and
// only the small map of recent changes is copied; recent is folded into a new
// base once it grows.
type index struct {
	// version is the store.FeedVersion this index has applied everything up to.
	version       uint64
	inactiveAfter int64 // nanoseconds; 0: the inactivity policy is off
	base          map[secret.Digest]entry
	recent        map[secret.Digest]entry
	text          string
	deadText      int    // bytes of text that belong to deleted tokens
	nextSlot      uint32 // the slot the next new token gets
	blocked       map[blockKey]struct{}
}

// lookup finds a live token by digest.
func (x *index) lookup(d secret.Digest) (entry, bool) {
	if len(x.recent) > 0 {
		if e, ok := x.recent[d]; ok {
			return e, e.flags&flagLive != 0
		}
	}
	e, ok := x.base[d]
	return e, ok
}

func (x *index) name(e *entry) string {
	return x.text[e.textOff : e.textOff+uint32(e.nameLen)]
}

func (x *index) id(e *entry) string {
	start := e.textOff + uint32(e.nameLen)
	return x.text[start : start+uint32(e.idLen)]
}

// expired is store.Token.Expired on an entry: an active token unused for
// inactiveAfter or longer.
func (x *index) expired(e *entry, now int64) bool {
	return e.flags&flagActive != 0 && x.inactiveAfter > 0 && now-e.since >= x.inactiveAfter
}

func (x *index) isBlocked(slot uint32, ip netip.Addr) bool {
	_, b := x.blocked[blockKeyOf(slot, ip)]
	return b
}

// maxRecent is how many changed tokens recent holds before they are folded
// into a new base: copying recent on each change stays cheap, and the fold (a
// copy of base) happens once per maxRecent changes.
const maxRecent = 2048

// editor builds the next index from the current one. byID (token ID to digest)
// belongs to the gate's applier, whose lock serializes editors.
type editor struct {
	x         *index
	byID      map[string]secret.Digest
	text      []byte // names and IDs of new tokens, to follow x.text
	ownRecent bool
	ownBlock  bool
}

func newEditor(cur *index, byID map[string]secret.Digest) *editor {
	next := *cur
	return &editor{x: &next, byID: byID}
}

func (ed *editor) recent() map[secret.Digest]entry {
	if !ed.ownRecent {
		ed.x.recent = maps.Clone(ed.x.recent)
		if ed.x.recent == nil {
			ed.x.recent = map[secret.Digest]entry{}
		}
		ed.ownRecent = true
	}
	return ed.x.recent
}

func (ed *editor) blocked() map[blockKey]struct{} {
	if !ed.ownBlock {
		ed.x.blocked = maps.Clone(ed.x.blocked)
		ed.ownBlock = true
	}
	return ed.x.blocked
}

// put adds a token with its blocked IPs (a build from store.GateEntries).
func (ed *editor) put(ge store.GateEntry) {
	ed.token(&ge.Token)
	for _, ip := range ge.Blocked {
		ed.block(ge.Token.ID, ip, true)
	}
}

// token adds a token, or replaces the fields of one the index has, from the
// token as a change carries it (store.ChangeToken): nothing is read. Its blocks
// stay as they are; they change with store.ChangeUsage.
func (ed *editor) token(t *store.Token) {
	e := entry{since: t.Since().UnixNano(), flags: flagLive}
	for _, a := range t.Access {
		e.access |= accessBits(a)
	}
	if t.Active {
		e.flags |= flagActive
	}
	old, known := ed.x.lookup(t.Digest)
	if known {
		// The name, the ID and the digest never change, and the inactivity
		// clock only moves forward: a change published after a later use
		// must not move it back.
		e.slot, e.textOff, e.nameLen, e.idLen = old.slot, old.textOff, old.nameLen, old.idLen
		e.flags |= old.flags & flagBlocked
		e.since = max(e.since, old.since)
		if old != e {
			ed.recent()[t.Digest] = e
		}
		return
	}
	e.slot = ed.x.nextSlot
	ed.x.nextSlot++
	e.textOff = uint32(len(ed.x.text) + len(ed.text))
	e.nameLen, e.idLen = uint8(len(t.Name)), uint16(len(t.ID))
	ed.text = append(append(ed.text, t.Name...), t.ID...)
	ed.recent()[t.Digest] = e
	ed.byID[t.ID] = t.Digest
}

// block blocks or unblocks one address for the token id, as a change carries
// it (store.ChangeUsage): nothing is read.
func (ed *editor) block(id, addr string, blocked bool) {
	d, ok := ed.byID[id]
	if !ok {
		return
	}
	e, live := ed.x.lookup(d)
	if !live {
		return
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return
	}
	k := blockKeyOf(e.slot, ip)
	if blocked {
		ed.blocked()[k] = struct{}{}
		if e.flags&flagBlocked == 0 {
			e.flags |= flagBlocked
			ed.recent()[d] = e
		}
		return
	}
	if _, ok := ed.x.blocked[k]; !ok {
		return
	}
	b := ed.blocked()
	delete(b, k)
	for other := range b {
		if other.slot == e.slot {
			return // more blocks of this token remain
		}
	}
	e.flags &^= flagBlocked
	ed.recent()[d] = e
}

// used moves a token's last use to at (unix nanoseconds), if that is later than
// when its inactivity clock started.
func (ed *editor) used(id string, at int64) {
	d, ok := ed.byID[id]
	if !ok {
		return
	}
	if e, live := ed.x.lookup(d); live && at > e.since {
		e.since = at
		ed.recent()[d] = e
	}
}

// unblockAll forgets the blocked IPs of slot.
func (ed *editor) unblockAll(slot uint32) {
	b := ed.blocked()
	for k := range b {
		if k.slot == slot {
			delete(b, k)
		}
	}
}

// remove forgets a deleted token.
func (ed *editor) remove(id string) {
	d, ok := ed.byID[id]
	if !ok {
		return
	}
	delete(ed.byID, id)
	e, live := ed.x.lookup(d)
	if !live {
		return
	}
	if e.flags&flagBlocked != 0 {
		ed.unblockAll(e.slot)
	}
	ed.x.deadText += int(e.nameLen) + int(e.idLen)
	ed.recent()[d] = entry{} // no flagLive: deleted
}

// done returns the new index at version, folding recent changes into a new base
// once there are many.
func (ed *editor) done(version uint64) *index {
	x := ed.x
	x.version = version
	if len(ed.text) > 0 {
		x.text += string(ed.text)
	}
	if len(x.recent) > maxRecent {
		fold(x)
	}
	return x
}

// fold makes a new base of base and recent, and drops the text of deleted
// tokens when it is most of the text.
func fold(x *index) {
	base := make(map[secret.Digest]entry, len(x.base)+len(x.recent))
	maps.Copy(base, x.base)
	for d, e := range x.recent {
		if e.flags&flagLive == 0 {
			delete(base, d)
		} else {
			base[d] = e
		}
	}
	if x.deadText > len(x.text)/2 {
		text := make([]byte, 0, len(x.text)-x.deadText)
		for d, e := range base {
			start, n := int(e.textOff), int(e.nameLen)+int(e.idLen)
			e.textOff = uint32(len(text))
			text = append(text, x.text[start:start+n]...)
			base[d] = e
		}
		x.text, x.deadText = string(text), 0
	}
	x.base, x.recent = base, nil
}

// build makes a fresh index of every entry, filling byID.
func build(entries []store.GateEntry, inactiveAfter time.Duration, version uint64, byID map[string]secret.Digest) *index {
	x := &index{
		inactiveAfter: int64(inactiveAfter),
		recent:        make(map[secret.Digest]entry, len(entries)),
		blocked:       map[blockKey]struct{}{},
	}
	ed := &editor{x: x, byID: byID, ownRecent: true, ownBlock: true}
	for _, ge := range entries {
		ed.put(ge)
	}
	// Fresh: the whole map is the base.
	x.version, x.text = version, string(ed.text)
	x.base, x.recent = x.recent, nil
	return x
}
