package tokenset

import (
	"slices"
	"time"

	"github.com/apptokens/apptokens/store"
)

// Builder makes each Set from the one before: it copies only the chunks that
// change, carries the computed sort orders forward (merging the tokens whose
// keys moved into them, linear in the tokens, never a new sort), and keeps the
// index from token ID to position that changes are applied through. One
// goroutine at a time; the Sets it publishes are safe for any number.
type Builder struct {
	cur     *Set
	pos     map[string]int32
	epoch   uint64
	textGen uint64

	next      *Set         // being built; nil when nothing is staged
	owned     map[int]bool // chunks of next copied already
	ownedUsed map[int]bool // chunks of next.used copied already
	moved     map[int32]uint8
	fresh     bool // a new epoch: no order is carried
	gone      bool // a token was removed since the last Publish
}

// keyBits is the sort keys a change of a token's fields moves it in.
const (
	bitsAll      = 1<<SortName | 1<<SortCreated | 1<<SortLastUsed
	bitsLastUsed = 1 << SortLastUsed
)

// compactAt is the least number of deleted slots before a compaction, which
// happens when they are also more than a quarter of all slots.
const compactAt = 64

// Reset starts a new, empty epoch: the next Publish holds only what is added
// after it.
func (b *Builder) Reset(inactiveAfter time.Duration) {
	b.epoch++
	b.textGen++
	b.cur = nil
	b.pos = map[string]int32{}
	b.next = &Set{epoch: b.epoch, inactiveAfter: inactiveAfter}
	b.owned, b.ownedUsed = map[int]bool{}, map[int]bool{}
	b.moved = map[int32]uint8{}
	b.fresh, b.gone = true, false
}

// Current is the last Set published, nil before the first.
func (b *Builder) Current() *Set { return b.cur }

// stage starts the next Set as a copy of the current one that shares every chunk.
func (b *Builder) stage() *Set {
	if b.next == nil {
		if b.cur == nil {
			b.Reset(0)
			return b.next
		}
		c := b.cur
		b.next = &Set{chunks: slices.Clone(c.chunks), used: slices.Clone(c.used), n: c.n, live: c.live, epoch: c.epoch, inactiveAfter: c.inactiveAfter, deleteAfter: c.deleteAfter}
		b.owned, b.ownedUsed = map[int]bool{}, map[int]bool{}
		b.moved = map[int32]uint8{}
		b.fresh, b.gone = false, false
	}
	return b.next
}

// writable is the entry at p in the next Set, its chunk copied first if it is
// still shared with a published Set.
func (b *Builder) writable(p int) *entry {
	ci := p / chunkSize
	if !b.owned[ci] {
		c := *b.next.chunks[ci]
		b.next.chunks[ci] = &c
		b.owned[ci] = true
	}
	return &b.next.chunks[ci][p%chunkSize]
}

// writableUsed is the last use at p in the next Set, its chunk copied first
// if it is still shared.
func (b *Builder) writableUsed(p int) *int64 {
	ci := p / chunkSize
	if !b.ownedUsed[ci] {
		c := *b.next.used[ci]
		b.next.used[ci] = &c
		b.ownedUsed[ci] = true
	}
	return &b.next.used[ci][p%chunkSize]
}

// SetInactiveAfter records the inactivity policy.
func (b *Builder) SetInactiveAfter(d time.Duration) {
	if b.cur != nil && b.next == nil && b.cur.inactiveAfter == d {
		return
	}
	b.stage().inactiveAfter = d
}

// SetDeleteAfter records the auto-delete policy.
func (b *Builder) SetDeleteAfter(d time.Duration) {
	if b.cur != nil && b.next == nil && b.cur.deleteAfter == d {
		return
	}
	b.stage().deleteAfter = d
}

// Add puts t in: a new token at a new position, or the new state of a known
// one. A last use is only ever moved forward (a read older than a use that was
// applied already does not undo it).
func (b *Builder) Add(t store.Token) {
	s := b.stage()
	if p, ok := b.pos[t.ID]; ok {
		e := b.writable(int(p))
		ne, used := makeEntry(t)
		var bits uint8
		if used > b.next.lastUsed(int(p)) {
			*b.writableUsed(int(p)) = used
			bits |= bitsLastUsed
		}
		if ne.name != e.name || ne.created != e.created {
			bits |= bitsAll
		}
		if ne.lower != e.lower || ne.text != e.text {
			b.textGen++
		}
		*e = ne
		b.moved[p] |= bits
		return
	}
	p := s.n
	if p%chunkSize == 0 {
		s.chunks = append(s.chunks, new([chunkSize]entry))
		s.used = append(s.used, new([chunkSize]int64))
		b.owned[p/chunkSize] = true
		b.ownedUsed[p/chunkSize] = true
	}
	e, used := makeEntry(t)
	*b.writable(p) = e
	*b.writableUsed(p) = used
	s.n++
	s.live++
	b.textGen++
	b.pos[t.ID] = int32(p)
	b.moved[int32(p)] |= bitsAll
}

// Remove takes the token with this ID out, if it is there.
func (b *Builder) Remove(id string) {
	p, ok := b.pos[id]
	if !ok {
		return
	}
	s := b.stage()
	*b.writable(int(p)) = entry{gone: true}
	*b.writableUsed(int(p)) = 0
	delete(b.pos, id)
	s.live--
	b.textGen++
	b.gone = true
}

// Touch moves the last use of the token with this ID forward to at; it never
// moves back.
func (b *Builder) Touch(id string, at time.Time) {
	p, ok := b.pos[id]
	if !ok {
		return
	}
	cur := b.cur
	if b.next != nil {
		cur = b.next
	}
	if nanos(at) <= cur.lastUsed(int(p)) {
		return
	}
	b.stage()
	*b.writableUsed(int(p)) = nanos(at)
	b.moved[p] |= bitsLastUsed
}

// Publish returns the Set with every staged change: the current one when
// nothing changed. The orders the current Set computed are carried into it.
func (b *Builder) Publish() *Set {
	next := b.next
	if next == nil {
		return b.cur
	}
	if gone := next.n - next.live; gone >= compactAt && gone > next.n/4 {
		next = b.compact(next)
	} else if !b.fresh && b.cur != nil {
		old := b.cur.computedOrders()
		for k := range NumSortKeys {
			if old[k] != nil {
				next.orders[k] = b.carry(next, k, old[k])
			}
		}
	}
	next.textGen = b.textGen
	b.cur, b.next = next, nil
	b.owned, b.ownedUsed, b.moved = nil, nil, nil
	return next
}

// carry is the order k of next from the previous Set's order: the tokens
// whose key k moved (or that are new) are sorted apart and merged with the
// rest, which are still in order.
func (b *Builder) carry(next *Set, k SortKey, old []int32) []int32 {
	bit := uint8(1) << k
	var ms []int32
	skip := make([]uint64, (next.n+63)/64) // moved, or gone: not kept where it was
	for p, bits := range b.moved {
		if bits&bit != 0 {
			skip[p/64] |= 1 << (p % 64)
			if !next.entry(int(p)).gone {
				ms = append(ms, p)
			}
		}
	}
	if len(ms) == 0 && !b.gone {
		return old
	}
	if b.gone {
		for _, p := range old {
			if next.entry(int(p)).gone {
				skip[p/64] |= 1 << (p % 64)
			}
		}
	}
	cmp := next.comparer(k)
	slices.SortFunc(ms, cmp)
	merged := make([]int32, 0, next.live)
	j := 0
	for _, p := range old {
		if skip[p/64]&(1<<(p%64)) != 0 {
			continue
		}
		for j < len(ms) && cmp(ms[j], p) < 0 {
			merged = append(merged, ms[j])
			j++
		}
		merged = append(merged, p)
	}
	return append(merged, ms[j:]...)
}

// compact rebuilds next without its deleted slots, in a new epoch.
func (b *Builder) compact(next *Set) *Set {
	var c Builder
	c.epoch = b.epoch
	c.Reset(next.inactiveAfter)
	c.next.deleteAfter = next.deleteAfter
	for p := 0; p < next.n; p++ {
		if !next.entry(p).gone {
			c.Add(next.token(p))
		}
	}
	b.epoch, b.pos, b.textGen = c.epoch, c.pos, b.textGen+c.textGen
	return c.next
}
