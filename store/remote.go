package store

import (
	"encoding/json"
	"errors"
	"log/slog"
)

// Changes through a SharedEngine: every transaction that changes something
// writes its changes to ChangesKey (commit), and every process, the writer
// included, publishes what its watch of that key delivers. The value is
// versioned JSON: {"v":1,"changes":[…]}; a Change carries the state its
// subscribers need (the token as committed, the usage rows with every node's
// counts merged), so applying one reads nothing.

// changesVersion is the encoding of ChangesKey's value this code writes and
// reads.
const changesVersion = 1

type changesValue struct {
	V       int      `json:"v"`
	Changes []Change `json:"changes"`
}

func encodeChanges(changes []Change) ([]byte, error) {
	return json.Marshal(changesValue{V: changesVersion, Changes: changes})
}

var errChangesVersion = errors.New("changes of another version")

func decodeChanges(b []byte) ([]Change, error) {
	var v changesValue
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	if v.V != changesVersion {
		return nil, errChangesVersion
	}
	return v.Changes, nil
}

// applyRemote publishes the changes of one committed transaction, from any
// process. A value it cannot decode (another version's, a damaged one) makes
// every subscriber reload: nothing is missed that way. The log line says why
// and never holds the value.
func (s *Store) applyRemote(value []byte) {
	changes, err := decodeChanges(value)
	if err != nil {
		slog.Warn("store: a change could not be decoded; subscribers reload", "engine", s.eng.String(), "err", err)
		s.resetRemote()
		return
	}
	for _, c := range changes {
		if c.Kind == ChangePolicy {
			s.setPolicy(c.InactiveAfter)
		}
	}
	s.feed.publish(changes...)
}

// resetRemote makes every subscriber reload: changes may have been missed
// (the watch's history was compacted, a Replace ran).
func (s *Store) resetRemote() {
	if err := s.loadPolicy(); err != nil {
		slog.Warn("store: reading the policy after a reset failed", "engine", s.eng.String(), "err", err)
	}
	s.feed.publish(Change{Kind: ChangeReload})
}
