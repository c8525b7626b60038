package gate

import (
	"encoding/binary"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go4.org/netipx"

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
	flagLive      uint8 = 1 << iota // a token; an entry of index.recent without it records a deletion
	flagActive                      // an admin has not deactivated it
	flagBlocked                     // at least one single IP is blocked for it: consult index.blocked
	flagRules                       // it has an allow-list or blocked ranges: entry.spanOff, index.ruleSets[entry.rules-1]
	flagOldSecret                   // the entry of a rotated token's previous secret, valid until entry.until
	flagAllow                       // it has an allow-list: an address outside entry's allowed spans is refused
)

// entry is one token as the verifier needs it, stored in the map by digest so
// that a verification costs one map probe. It holds no pointer (the name and ID
// live in index.text), so the garbage collector never scans the index.
type entry struct {
	since   int64  // unix nanoseconds the inactivity clock started (store.Token's since)
	expires int64  // unix nanoseconds the token expires at; 0: never
	until   int64  // with flagOldSecret: unix nanoseconds the previous secret stops working at
	slot    uint32 // the token's small number in this gate: blocked IPs and usage use it
	textOff uint32 // name, then ID, in index.text
	rules   uint32 // with flagRules: what its rules were made of is index.ruleSets[rules-1]
	// With flagRules, index.spans[spanOff:] holds nBlock blocked spans, then
	// nAllow allowed ones: a check reads the entry and those.
	spanOff uint32
	nBlock  uint32
	nAllow  uint16
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

// keys are the digests the index holds a token under: its secret's and, after
// a rotation, its previous secret's (refused as rotated_token once its grace
// window is over).
type keys struct {
	cur, old secret.Digest
	hasOld   bool
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
	olds          int    // live entries of previous secrets (flagOldSecret), not tokens of their own
	// blocked holds the single addresses blocked per token: one probe.
	blocked map[blockKey]struct{}
	// spans holds the network rules of the tokens that have any (flagRules)
	// as prefix tables: per token, sorted, merged ranges of addresses, so
	// that a check is a binary search whatever their number. ruleSets holds
	// what each was made of, for the next edit. Like text both only grow,
	// shared between snapshots (a snapshot never reads past its own
	// length): a token's new rules are appended, and the ones they replace
	// are dropped at a fold once most are dead.
	spans     []span
	ruleSets  []ruleSource
	deadSpans int
	deadRules int
}

// ruleSource is what a token's rules were made of.
type ruleSource struct {
	ranges []netip.Prefix // blocked ranges (not single addresses)
	allow  []netip.Prefix // the allow-list; empty: any address
}

// span is an inclusive range of addresses as 128-bit numbers: IPv6, and IPv4
// in its IPv4-mapped form (::ffff:a.b.c.d), which no IPv6 span covers.
type (
	span struct{ lo, hi u128 }
	u128 struct{ hi, lo uint64 }
)

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

func u128Of(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// in reports whether ip is in one of the sorted, disjoint spans.
func in(spans []span, ip u128) bool {
	lo, hi := 0, len(spans)
	for lo < hi { // the first span that ends at or after ip

		m := int(uint(lo+hi) >> 1)
		if spans[m].hi.less(ip) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(spans) && !ip.less(spans[lo].lo)
}

// spansOf merges the prefixes into sorted, disjoint spans (netipx does the
// merging). An IPv6 prefix never covers an IPv4 client: the IPv4-mapped range
// is taken out of the IPv6 ones (the IPv4 spans live there).
func spansOf(ps []netip.Prefix) []span {
	if len(ps) == 0 {
		return nil
	}
	var b netipx.IPSetBuilder
	for _, p := range ps {
		b.AddPrefix(p)
	}
	b.RemovePrefix(netip.MustParsePrefix("::ffff:0:0/96"))
	set, _ := b.IPSet() // every prefix is valid: parseRange made it
	var v4, v6 []span
	for _, r := range set.Ranges() {
		if r.From().Is4() {
			f, t := r.From().As16(), r.To().As16() // the IPv4-mapped form
			v4 = append(v4, span{u128Of(netip.AddrFrom16(f)), u128Of(netip.AddrFrom16(t))})
		} else {
			v6 = append(v6, span{u128Of(r.From()), u128Of(r.To())})
		}
	}
	// ::ffff:0:0/96 sorts after the IPv6 spans below it and before those above.
	out := make([]span, 0, len(v4)+len(v6))
	i := 0
	for i < len(v6) && v6[i].hi.less(u128{0, 0xffff << 32}) {
		out = append(out, v6[i])
		i++
	}
	out = append(out, v4...)
	return append(out, v6[i:]...)
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

// editor builds the next index from the current one. byID (token ID to its
// digests) belongs to the gate's applier, whose lock serializes editors.
type editor struct {
	x         *index
	byID      map[string]keys
	text      []byte // names and IDs of new tokens, to follow x.text
	ownRecent bool
	ownBlock  bool
	// edits are the rules changed by this editor, by slot; done turns them
	// into prefix tables once, however many changes a batch holds.
	edits map[uint32]*ruleEdit
}

// ruleEdit is a token's rules while an editor changes them.
type ruleEdit struct {
	id     string
	ranges map[netip.Prefix]struct{}
	allow  []netip.Prefix
}

func newEditor(cur *index, byID map[string]keys) *editor {
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
		if ed.x.blocked == nil {
			ed.x.blocked = map[blockKey]struct{}{}
		}
		ed.ownBlock = true
	}
	return ed.x.blocked
}

// rulesOf is what the rules of the token entry e were made of, nil when it
// has none.
func (x *index) rulesOf(e *entry) *ruleSource {
	if e.flags&flagRules == 0 {
		return nil
	}
	return &x.ruleSets[e.rules-1]
}

// set puts e under d, keeping the count of previous secrets.
func (ed *editor) set(d secret.Digest, e entry) {
	old, live := ed.x.lookup(d)
	if live && old == e {
		return
	}
	if live && old.flags&flagOldSecret != 0 {
		ed.x.olds--
	}
	if e.flags&flagOldSecret != 0 {
		ed.x.olds++
	}
	ed.recent()[d] = e
}

// kill forgets the entry under d.
func (ed *editor) kill(d secret.Digest) {
	old, live := ed.x.lookup(d)
	if !live {
		return
	}
	if old.flags&flagOldSecret != 0 {
		ed.x.olds--
	}
	ed.recent()[d] = entry{} // no flagLive: deleted
}

// setFlag sets or clears flag on every entry of the token k.
func (ed *editor) setFlag(k keys, flag uint8, on bool) {
	ed.modify(k, func(e *entry) {
		if on {
			e.flags |= flag
		} else {
			e.flags &^= flag
		}
	})
}

// modify changes every entry of the token k with fn.
func (ed *editor) modify(k keys, fn func(*entry)) {
	for i, d := range [2]secret.Digest{k.cur, k.old} {
		if i == 1 && !k.hasOld {
			break
		}
		e, live := ed.x.lookup(d)
		if !live {
			continue
		}
		fn(&e)
		ed.set(d, e)
	}
}

// put adds a token with its blocked addresses and ranges (a build from
// store.GateEntries).
func (ed *editor) put(ge store.GateEntry) {
	ed.token(&ge.Token)
	for _, ip := range ge.Blocked {
		ed.block(ge.Token.ID, ip, true)
	}
}

// token adds a token, or replaces the fields of one the index has, from the
// token as a change carries it (store.ChangeToken): nothing is read. Its
// previous secret (a rotation) and its allow-list come with it; its blocks
// stay as they are: they change with store.ChangeUsage.
func (ed *editor) token(t *store.Token) {
	e := entry{since: t.Since().UnixNano(), expires: expiresOf(t), flags: flagLive}
	for _, a := range t.Access {
		e.access |= accessBits(a)
	}
	if t.Active {
		e.flags |= flagActive
	}
	k, known := ed.byID[t.ID]
	var old entry
	live := false
	if known {
		old, live = ed.x.lookup(k.cur)
	}
	if live {
		// The name and the ID never change, and the inactivity clock only
		// moves forward: a change published after a later use must not move
		// it back.
		e.slot, e.textOff, e.nameLen, e.idLen = old.slot, old.textOff, old.nameLen, old.idLen
		e.rules, e.spanOff, e.nBlock, e.nAllow = old.rules, old.spanOff, old.nBlock, old.nAllow
		e.flags |= old.flags & (flagBlocked | flagRules | flagAllow)
		e.since = max(e.since, old.since)
	} else {
		e.slot = ed.x.nextSlot
		ed.x.nextSlot++
		e.textOff = uint32(len(ed.x.text) + len(ed.text))
		e.nameLen, e.idLen = uint8(len(t.Name)), uint16(len(t.ID))
		ed.text = append(append(ed.text, t.Name...), t.ID...)
	}
	nk := keys{cur: t.Digest}
	oldDigest, until, rotating := oldSecretOf(t)
	if rotating && oldDigest != t.Digest {
		nk.old, nk.hasOld = oldDigest, true
	}
	if known {
		// Digests the token no longer answers to (a rotation moved them on).
		stale := func(d secret.Digest) bool { return d != nk.cur && (!nk.hasOld || d != nk.old) }
		if stale(k.cur) {
			ed.kill(k.cur)
		}
		if k.hasOld && stale(k.old) {
			ed.kill(k.old)
		}
	}
	ed.set(nk.cur, e)
	if nk.hasOld {
		eo := e
		eo.flags |= flagOldSecret
		eo.until = until
		ed.set(nk.old, eo)
	}
	ed.byID[t.ID] = nk
	ed.allow(t.ID, &e, allowedOf(t))
}

// edit is the rules of the token id (entry e) as this editor changes them.
func (ed *editor) edit(id string, e *entry) *ruleEdit {
	if re, ok := ed.edits[e.slot]; ok {
		return re
	}
	re := &ruleEdit{id: id, ranges: map[netip.Prefix]struct{}{}}
	if r := ed.x.rulesOf(e); r != nil {
		for _, p := range r.ranges {
			re.ranges[p] = struct{}{}
		}
		re.allow = r.allow
	}
	if ed.edits == nil {
		ed.edits = map[uint32]*ruleEdit{}
	}
	ed.edits[e.slot] = re
	return re
}

// allow replaces the allow-list of the token id (entry e) with the ranges of
// list (addresses or CIDRs); an empty list allows any address.
func (ed *editor) allow(id string, e *entry, list []string) {
	var allow []netip.Prefix
	for _, s := range list {
		if p, ok := parseRange(s); ok {
			allow = append(allow, p)
		}
	}
	if re, ok := ed.edits[e.slot]; ok {
		re.allow = allow
		return
	}
	cur := ed.x.rulesOf(e)
	if cur == nil && len(allow) == 0 || cur != nil && slices.Equal(cur.allow, allow) {
		return // unchanged: most token changes are not about the allow-list
	}
	ed.edit(id, e).allow = allow
}

// block blocks or unblocks one address or range for the token id, as a
// change carries it (store.ChangeUsage): nothing is read.
func (ed *editor) block(id, addr string, blocked bool) {
	k, ok := ed.byID[id]
	if !ok {
		return
	}
	e, live := ed.x.lookup(k.cur)
	if !live {
		return
	}
	p, ok := parseRange(addr)
	if !ok {
		return
	}
	if !p.IsSingleIP() {
		re := ed.edit(id, &e)
		if blocked {
			re.ranges[p] = struct{}{}
		} else {
			delete(re.ranges, p)
		}
		return
	}
	key := blockKeyOf(e.slot, p.Addr())
	if blocked {
		ed.blocked()[key] = struct{}{}
		if e.flags&flagBlocked == 0 {
			ed.setFlag(k, flagBlocked, true)
		}
		return
	}
	if _, ok := ed.x.blocked[key]; !ok {
		return
	}
	b := ed.blocked()
	delete(b, key)
	for other := range b {
		if other.slot == e.slot {
			return // more blocks of this token remain
		}
	}
	ed.setFlag(k, flagBlocked, false)
}

// parseRange reads an address or a CIDR as the prefix it covers: masked,
// without a zone, and IPv4-mapped IPv6 as its IPv4 form, so that the IPv4
// address a client is seen with matches either spelling.
func parseRange(s string) (netip.Prefix, bool) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		a = a.Unmap().WithZone("")
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked(), true
}

// used moves a token's last use to at (unix nanoseconds), if that is later than
// when its inactivity clock started.
func (ed *editor) used(id string, at int64) {
	k, ok := ed.byID[id]
	if !ok {
		return
	}
	for i, d := range [2]secret.Digest{k.cur, k.old} {
		if i == 1 && !k.hasOld {
			break
		}
		if e, live := ed.x.lookup(d); live && at > e.since {
			e.since = at
			ed.set(d, e)
		}
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
	k, ok := ed.byID[id]
	if !ok {
		return
	}
	delete(ed.byID, id)
	e, live := ed.x.lookup(k.cur)
	if !live {
		return
	}
	if e.flags&flagBlocked != 0 {
		ed.unblockAll(e.slot)
	}
	delete(ed.edits, e.slot)
	if e.flags&flagRules != 0 {
		ed.x.deadRules++
		ed.x.deadSpans += int(e.nBlock) + int(e.nAllow)
	}
	ed.x.deadText += int(e.nameLen) + int(e.idLen)
	ed.kill(k.cur)
	if k.hasOld {
		ed.kill(k.old)
	}
}

// finishRules turns the rules edited into prefix tables, appended to spans,
// and points the tokens' entries at them.
func (ed *editor) finishRules() {
	for _, re := range ed.edits {
		k, ok := ed.byID[re.id]
		if !ok {
			continue // deleted meanwhile
		}
		e, live := ed.x.lookup(k.cur)
		if !live {
			continue
		}
		if e.flags&flagRules != 0 {
			ed.x.deadRules++
			ed.x.deadSpans += int(e.nBlock) + int(e.nAllow)
		}
		if len(re.ranges) == 0 && len(re.allow) == 0 {
			ed.modify(k, func(e *entry) {
				e.flags &^= flagRules | flagAllow
				e.rules, e.spanOff, e.nBlock, e.nAllow = 0, 0, 0, 0
			})
			continue
		}
		src := ruleSource{allow: re.allow, ranges: slices.SortedFunc(maps.Keys(re.ranges), comparePrefix)}
		block, allow := spansOf(src.ranges), spansOf(src.allow)
		ed.x.ruleSets = append(ed.x.ruleSets, src)
		rules, off := uint32(len(ed.x.ruleSets)), uint32(len(ed.x.spans))
		ed.x.spans = append(append(ed.x.spans, block...), allow...)
		ed.modify(k, func(e *entry) {
			e.flags |= flagRules
			e.flags &^= flagAllow
			if len(src.allow) > 0 {
				e.flags |= flagAllow
			}
			e.rules, e.spanOff, e.nBlock, e.nAllow = rules, off, uint32(len(block)), uint16(len(allow))
		})
	}
	ed.edits = nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// done returns the new index at version, folding recent changes into a new base
// once there are many.
func (ed *editor) done(version uint64) *index {
	ed.finishRules()
	x := ed.x
	x.version = version
	if len(ed.text) > 0 {
		x.text += string(ed.text)
	}
	// Rules replaced over and over (the same few tokens) never grow recent:
	// their dead spans call for a fold of their own.
	if len(x.recent) > maxRecent || x.deadSpans > maxDeadSpans && x.deadSpans > len(x.spans)/2 ||
		x.deadRules > maxDeadSpans/4 && x.deadRules > len(x.ruleSets)/2 {
		fold(x)
	}
	return x
}

// maxDeadSpans is how many spans of replaced rules the index keeps before a
// fold drops them (once they are most of the spans): a fold copies every
// token, so it waits for enough garbage to pay for it.
const maxDeadSpans = 4096

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
	if x.deadSpans > len(x.spans)/2 || x.deadRules > len(x.ruleSets)/2 {
		// Fresh arrays: older snapshots keep reading the old ones.
		sets := make([]ruleSource, 0, len(x.ruleSets)-x.deadRules)
		spans := make([]span, 0, len(x.spans)-x.deadSpans)
		type place struct{ rules, off uint32 }
		moved := map[uint32]place{} // both entries of a token share its rules
		for d, e := range base {
			if e.flags&flagRules == 0 {
				continue
			}
			p, ok := moved[e.rules]
			if !ok {
				p = place{uint32(len(sets) + 1), uint32(len(spans))}
				sets = append(sets, x.ruleSets[e.rules-1])
				spans = append(spans, x.spans[e.spanOff:e.spanOff+e.nBlock+uint32(e.nAllow)]...)
				moved[e.rules] = p
			}
			e.rules, e.spanOff = p.rules, p.off
			base[d] = e
		}
		x.ruleSets, x.spans, x.deadRules, x.deadSpans = sets, spans, 0, 0
	}
	x.base, x.recent = base, nil
}

// build makes a fresh index of every entry, filling byID.
func build(entries []store.GateEntry, inactiveAfter time.Duration, version uint64, byID map[string]keys) *index {
	x := &index{
		inactiveAfter: int64(inactiveAfter),
		recent:        make(map[secret.Digest]entry, len(entries)),
		blocked:       map[blockKey]struct{}{},
	}
	ed := &editor{x: x, byID: byID, ownRecent: true, ownBlock: true}
	for _, ge := range entries {
		ed.put(ge)
	}
	ed.finishRules()
	// Fresh: the whole map is the base.
	x.version, x.text = version, string(ed.text)
	x.base, x.recent = x.recent, nil
	return x
}
