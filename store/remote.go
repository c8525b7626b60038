package store

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// Changes through a SharedEngine: every transaction that changes something
// writes its changes to ChangesKey (commit), and every process, the writer
// included, publishes what its watch of that key delivers. The value is
// versioned JSON: {"v":1,"id":"…","changes":[…]}; a Change carries the state its
// subscribers need (the token as committed, the usage rows with every node's
// counts merged), so applying one reads nothing.

// changesVersion is the encoding of ChangesKey's value this code writes and
// reads.
const changesVersion = 1

type changesValue struct {
	V int `json:"v"`
	// ID names the commit among every process's (echoes): random per Store,
	// then a sequence number.
	ID      string   `json:"id,omitempty"`
	Changes []Change `json:"changes"`
}

func encodeChanges(id string, changes []Change) ([]byte, error) {
	return json.Marshal(changesValue{V: changesVersion, ID: id, Changes: changes})
}

// echoTimeout bounds how long a write waits for its own changes to come back
// through the watch; past it the write returns all the same (it committed),
// and the changes reach the subscribers when the watch delivers them.
const echoTimeout = 5 * time.Second

// echoes lets a write on a shared engine return only once this process's
// subscribers have its changes, as on a plain engine, where they are
// published before the write returns: a session that made a change sees it
// at once, and a caller that reads the feed right after a write finds it.
type echoes struct {
	prefix  string // random, this Store's
	mu      sync.Mutex
	seq     uint64
	waiting map[string]chan struct{}
}

// expect returns a fresh commit ID and the channel closed when its changes
// have been published here.
func (e *echoes) expect() (string, chan struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	id := e.prefix + strconv.FormatUint(e.seq, 10)
	ch := make(chan struct{})
	if e.waiting == nil {
		e.waiting = map[string]chan struct{}{}
	}
	e.waiting[id] = ch
	return id, ch
}

// done releases the writer of id, if it waits here.
func (e *echoes) done(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ch, ok := e.waiting[id]; ok {
		close(ch)
		delete(e.waiting, id)
	}
}

// doneAll releases every writer (after a reset: their changes are covered by
// the reload).
func (e *echoes) doneAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, ch := range e.waiting {
		close(ch)
		delete(e.waiting, id)
	}
}

// wait waits for ch at most echoTimeout.
func (e *echoes) wait(ch chan struct{}) {
	t := time.NewTimer(echoTimeout)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

var errChangesVersion = errors.New("changes of another version")

func decodeChanges(b []byte) (id string, changes []Change, err error) {
	var v changesValue
	if err := json.Unmarshal(b, &v); err != nil {
		return "", nil, err
	}
	if v.V != changesVersion {
		return "", nil, errChangesVersion
	}
	return v.ID, v.Changes, nil
}

// applyRemote publishes the changes of one committed transaction, from any
// process. A value it cannot decode (another version's, a damaged one) makes
// every subscriber reload: nothing is missed that way. The log line says why
// and never holds the value.
func (s *Store) applyRemote(value []byte) {
	id, changes, err := decodeChanges(value)
	if err != nil {
		slog.Warn("store: a change could not be decoded; subscribers reload", "engine", s.eng.String(), "err", err)
		s.resetRemote()
		return
	}
	for _, c := range changes {
		if c.Kind == ChangePolicy {
			s.setPolicy(c.InactiveAfter, c.DeleteAfter)
		}
	}
	s.feed.publish(changes...)
	s.echoes.done(id)
}

// resetRemote makes every subscriber reload: changes may have been missed
// (the watch's history was compacted, a Replace ran).
func (s *Store) resetRemote() {
	if err := s.loadPolicy(); err != nil {
		slog.Warn("store: reading the policy after a reset failed", "engine", s.eng.String(), "err", err)
	}
	s.feed.publish(Change{Kind: ChangeReload})
	s.echoes.doneAll()
}
